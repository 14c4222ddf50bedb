"""The complexity estimator: ordering on clearly simple vs clearly complex prompts, range,
determinism, and its place as a replaceable built-in plugin."""

from __future__ import annotations

import pytest

from legion_core.builtin import complexity as builtin
from legion_core.hookspecs import hookimpl
from legion_core.plugins.manager import PluginManager
from legion_core.routing import estimate_complexity
from legion_core.routing.complexity import WEIGHTS, features
from legion_core.types import Message, TextBlock, text_request

SIMPLE = [
    "What day comes after Tuesday?",
    "What is the capital of France?",
    "hi",
    "Translate 'good morning' into Spanish.",
    "Write a short poem about autumn leaves.",
]
COMPLEX = [
    "Analyze the trade-offs between microservices and a monolith for a 10-person fintech startup: compare "
    "operational cost, deployment risk and team velocity, then recommend a migration plan with milestones.",
    "Prove that there are infinitely many primes of the form 4k+3, and explain why the same argument "
    "fails for 4k+1.",
    "Implement a thread-safe LRU cache in Python with O(1) get and put, explain its time complexity, and "
    "write unit tests that cover eviction and concurrent access.",
]
#: Multi-step arithmetic: harder than a look-up, though not necessarily a cloud job.
WORD_PROBLEMS = [
    "A store discounts a $240 jacket by 15%, then adds 8% tax. Maria pays with three $100 bills and "
    "splits the change equally between her 4 children. How much does each child get, and what fraction "
    "of the original price did she save?",
]


@pytest.mark.parametrize("text", SIMPLE)
def test_simple_prompts_stay_below_the_fleet_threshold(text):
    assert 0.0 <= estimate_complexity(text) < 0.35


@pytest.mark.parametrize("text", COMPLEX)
def test_complex_prompts_reach_the_cloud_threshold(text):
    assert estimate_complexity(text) >= 0.55


@pytest.mark.parametrize("text", WORD_PROBLEMS)
def test_multi_step_word_problems_leave_the_local_tier(text):
    assert estimate_complexity(text) >= 0.35


def test_every_complex_prompt_scores_above_every_simple_one():
    assert min(map(estimate_complexity, COMPLEX)) > max(map(estimate_complexity, SIMPLE))


def test_more_steps_means_harder():
    one = "Tom has 3 apples. How many apples does he have?"
    many = ("Tom has 3 apples. He buys twice as many pears as apples, then gives away half of his fruit "
            "and eats 2 pears. Each pear costs $0.75. How much is the fruit he has left worth?")
    assert estimate_complexity(many) > estimate_complexity(one)


def test_creative_writing_is_easier_than_analysis_of_the_same_length():
    creative = "Write a cheerful short story about a dragon who learns to bake bread with friends."
    analysis = "Explain why a dragon's metabolism would make baking bread inefficient, and justify each step."
    assert estimate_complexity(analysis) > estimate_complexity(creative)


def test_ambiguous_code_nouns_do_not_make_a_word_problem_look_like_code():
    school = features("A class of 30 students plants a tree each week.")
    code = features("Write a Python class with a method that balances a binary tree.")
    assert school["code"] < 0.2 < code["code"]


def test_range_determinism_and_empty_input():
    assert estimate_complexity("") == 0.0 and estimate_complexity("   \n") == 0.0
    huge = "Explain why. " * 20000
    v = estimate_complexity(huge)
    assert 0.0 <= v <= 1.0 and v == estimate_complexity(huge)
    assert set(features("x")) == set(WEIGHTS)


def test_builtin_plugin_reports_complexity_of_the_last_user_message():
    pm = PluginManager()
    pm.register(builtin, name="legion_core.builtin.complexity")
    req = text_request("ignored").model_copy(update={"messages": [
        Message(role="user", content="Prove the theorem and derive the bound step by step."),
        Message(role="assistant", content="ok"),
        Message(role="user", content=[TextBlock(text=SIMPLE[0])]),
    ]})
    [signals] = pm.hook.legion_request_signals(request=req)
    assert set(signals) == {"complexity"}  # lazy: the router calls it only when it decides anything
    assert signals["complexity"]() == estimate_complexity(SIMPLE[0])


def test_builtin_plugin_is_trylast_so_a_plugin_replaces_it():
    class Mine:
        @hookimpl
        def legion_request_signals(self, request):
            return {"complexity": 0.42}

    pm = PluginManager()
    pm.register(builtin, name="legion_core.builtin.complexity")
    pm.register(Mine(), name="mine")  # registered later, but not tryfirst: still called first
    results = pm.hook.legion_request_signals(request=text_request("hi"))
    assert results[0] == {"complexity": 0.42}
    impls = pm.hook.legion_request_signals.get_hookimpls()
    assert impls[0].plugin_name == "legion_core.builtin.complexity" and impls[0].trylast


# --- word problems: a prose prompt that gives quantities and asks for an amount -------------------

ABSOLUTE = ("Ana buys 4 pens for $2 each and 3 notebooks for $5 each, and a $1 bag, at the school shop. "
            "She pays with a $50 bill. How much change does she get back?")
CHAINED = ("Ana buys 4 pens and twice as many pencils as pens. Notebooks cost $3 more than a pen. "
           "She spends half of the rest on lunch. How much does she have left?")


@pytest.mark.parametrize("text", [
    ABSOLUTE,
    "A train leaves at 3 pm and travels 120 miles at 40 miles per hour. When does it arrive?",
    "Calculate the total cost of 12 apples at 25 cents each and 2 melons at $3 each.",
])
def test_a_quantity_story_that_asks_for_an_amount_is_a_word_problem(text):
    assert features(text)["word_problem"] == 1.0


@pytest.mark.parametrize("text", [
    "Tom has 3 apples. How many apples does he have?",  # one quantity: nothing to combine
    "Explain why 2 + 2 = 4 in Peano arithmetic, in 3 sentences.",  # asks for an explanation
    "Prove that the sum of 2 odd numbers is even for all 10 cases?",  # asks for a proof
    "Write a Python function that returns the 10th Fibonacci number; what is it for 20?",  # code
    "Write a poem of 4 stanzas about 12 ships at sea?",  # creative
    "Rank these:\n1. 3 apples\n2. 5 pears\nWhich is more?",  # an enumerated list, not prose
])
def test_other_asks_with_numbers_are_not_word_problems(text):
    assert features(text)["word_problem"] == 0.0


def test_narrative_words_in_a_word_problem_are_not_analysis_or_constraints():
    story = ("A designer must always pack 6 boxes an hour, and she works only 8 hours. "
             "Why she does it matters little: how many boxes does she pack in 5 days?")
    f = features(story.replace("Why she does it matters little: h", "H"))
    assert f["word_problem"] == 1.0 and f["analysis"] == f["constraints"] == f["code"] == 0.0
    # the same words in a request that is not a word problem still count
    g = features("A designer must always explain why the layout is good, and never exceed the budget.")
    assert g["word_problem"] == 0.0 and g["analysis"] > 0 and g["constraints"] > 0


def test_quantities_stated_relative_to_others_make_a_word_problem_harder():
    a, c = features(ABSOLUTE), features(CHAINED)
    assert a["length"] >= c["length"] and a["steps"] >= c["steps"]  # only the chaining differs
    assert a["chained"] == 0.0 < c["chained"]
    assert estimate_complexity(CHAINED) > estimate_complexity(ABSOLUTE)
    undo = features("After giving away 5 cards and buying 8, Ben has 20. How many did he have originally?")
    assert undo["chained"] > 0  # an initial state to be recovered: the steps run backwards


def test_more_named_people_to_keep_track_of_make_a_word_problem_harder():
    one = "Ana has 5 apples and 3 pears. Then Ana buys 4 more apples. How many fruits does Ana have?"
    three = "Ana has 5 apples, Ben 3 pears. Then Cleo buys 4 more apples. How many fruits do they have?"
    f1, f3 = features(one), features(three)
    assert f1["length"] == f3["length"] and f1["steps"] == f3["steps"]
    assert f1["entities"] == 0.0 < f3["entities"]  # "Then", "How": function words, not names
    assert estimate_complexity(three) > estimate_complexity(one)
    # a capitalised noun that merely starts a sentence is not someone to keep track of
    assert features("Ana buys 4 pens. Notebooks cost $3 more. How much does Ana spend?")["entities"] == 0.0


def test_word_problem_signals_are_zero_outside_word_problems():
    f = features(COMPLEX[0])
    assert f["word_problem"] == f["chained"] == f["entities"] == 0.0


def test_the_token_memo_filling_up_mid_prompt_changes_nothing(monkeypatch):
    """The memo is cleared when full, possibly in the middle of a prompt whose earlier tokens it
    had just answered: the bigram pass must not depend on them still being there."""
    from legion_core.routing import complexity as cx

    text = "how many marbles zqxa zqxb?"
    expected = cx.estimate_complexity(text)  # also memoises "how" and "many"
    for tok in ("zqxa", "zqxb?"):
        cx._MEMO.pop(tok, None)
        cx._CLEAN.pop(tok, None)
    monkeypatch.setattr(cx, "_MEMO_MAX", len(cx._MEMO) + 1)  # learning the second new token clears it
    assert cx.estimate_complexity(text) == expected
