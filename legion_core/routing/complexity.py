"""A heuristic difficulty score for a prompt: 0 = trivial, 1 = hardest.

No network, no model, no API key, tens of microseconds. It reads general linguistic signs
of difficulty, each squashed to about [0, 1], and combines them with hand-set weights
through a logistic function:

- length (log of the word count): longer asks usually carry more to get right;
- reasoning steps: numeric quantities and quantitative relations ("each", "twice", "per",
  "remaining", percentages) — roughly the number of steps a word problem needs;
- mathematical domain words (equation, probability, derivative, prove, ...);
- analysis cues (why, explain, compare, evaluate, trade-off, justify, step by step);
- logic-puzzle cues (suppose, if and only if, older than, riddle, ...);
- code (code fences, braces, programming vocabulary; ambiguous nouns such as "class" or
  "tree" count fully only next to an unambiguous code cue);
- several parts: more than one question, enumerated items, several imperatives;
- explicit constraints (must, exactly, at least, without, ...);
- and two signs of *easy* asks: creative writing / role-play, i.e. a production verb (write,
  compose, draft, imagine) with a creative object (weak models do these well), and
  short factual look-ups ("What day comes after Tuesday?").

Word problems are measured differently, because inside one kind of ask the cross-category
cues are noise. A *word problem* is prose (no list, no code, no creative ask) that gives at
least two quantities and asks for an amount (a question, "how many/much/long...", calculate,
determine), not for an explanation or a proof. For it, analysis, puzzle, code, constraint and
creative cues and the imperative/sentence counts of "parts" are zeroed — in a story about a
bakery, "design", "must" or "only" are narrative — and two signs of a longer chain count:

- chained quantities: a quantity stated relative to another ("twice as many as", "3 more
  than", "half of the rest") or a state to be recovered ("originally", "at first") forces
  the solver to carry an intermediate result forward or run the steps backwards, which is
  where a weak model drops a step;
- entities: every further named person or thing is another ledger to keep apart.

The weights are set by hand from these principles, not fitted to any evaluation set. Three
hypotheses were tried and dropped because RouteLLM's published outcomes contradicted them
(see docs/routing.md): "hard arithmetic" (percentages, decimals, large numbers), "technical
vocabulary" (share of long words — it marks humanities prose, where weak models do well) and
"unit conversions" in word problems (two units of one kind, e.g. minutes and hours: a hurdle
for people, apparently not for models that know the factors).
Speed comes from one `str.split()` and a memo of token → category bits (bounded).
`features()` returns the intermediate values, for explain output and tests.
"""

from __future__ import annotations

import math
import re
from collections import Counter

MAX_CHARS = 8000  # read at most this much; the length feature still sees the whole prompt

# category bits
(NUM, NUMWORD, REL, MATH, ANALYSIS, PUZZLE, CODE, CODEISH, CONSTR, IMPER, CREATIVE, MAKE, SENT, QUEST,
 BI, REF, ASKNUM, ASKWHY) = (1 << i for i in range(18))
_CATS = {"numword": NUMWORD, "rel": REL, "math": MATH, "analysis": ANALYSIS, "puzzle": PUZZLE,
         "code": CODE, "codeish": CODEISH, "constr": CONSTR, "imper": IMPER, "creative": CREATIVE,
         "make": MAKE, "ref": REF, "asknum": ASKNUM, "askwhy": ASKWHY}

# Lexicon: `word` exact, `stem*` any word starting with stem, `two words` a bigram.
_LEXICON: dict[int, str] = {
    NUMWORD: "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty "
             "fifty sixty hundred* thousand* million* dozen* half halves twice thrice double* triple* "
             "quarter* third thirds",
    REL: "each per every times percent* remaining remainder rest leftover total* altogether average ratio "
         "fraction proportion* rate speed profit discount* interest tax cost* price* spend* spent earn* "
         "save* saving* split share* increase* decrease* until difference sum product | more_than "
         "less_than fewer_than as_many as_much how_many how_much how_long how_far how_old in_all left_over",
    MATH: "equation* solve solution* calculat* comput* integral* derivative* differentiat* integrat* "
          "probabilit* variance prove proof theorem lemma matri* vector* polynomial* prime* factor* "
          "modul* logarithm* exponent* geometr* triangle* circle* radius area volume perimeter sequence "
          "series converge* limit function* inequalit* integer* divisib* gcd lcm permutation* "
          "combination* optimi* minimi* maximi* algebra* calculus statistic* regression | expected_value "
          "real_numbers",
    ANALYSIS: "why explain* analy* compar* contrast* evaluat* assess* justif* reason* implication* "
              "trade-off* tradeoff* critique critically argue argument* infer* deduc* derive derivation "
              "mechanism* cause* consequence* impact* hypothes* design strateg* recommend* propose "
              "diagnos* debug* troubleshoot* optimal efficien* detailed thorough* nuanc* underlying "
              "principle* framework* | step_by trade_off pros_and edge_case edge_cases in_depth",
    PUZZLE: "suppose assume assuming riddle puzzle paradox behind overtake* consistent contradict* valid "
            "implies therefore | given_that only_if older_than younger_than taller_than shorter_than "
            "left_of right_of front_of true_or which_of must_be cannot_be",
    CODE: "implement* algorithm* python javascript typescript java rust golang sql regex api recursion "
          "recursive runtime compile* exception big-o html css json yaml subroutine "
          "| linked_list dynamic_programming unit_test unit_tests regular_expression stack_trace "
          "time_complexity binary_search",
    # Words that are code vocabulary only next to other code cues ("a class of 30 students").
    CODEISH: "code program* function class method bug stack array binary tree graph hash* script library "
             "database query complexity",
    CONSTR: "must should exactly only ensure never always format limit within constraint* requirement* "
            "without | at_least at_most no_more no_fewer make_sure do_not",
    IMPER: "write list describe explain compare give provide create design implement analyze analyse "
           "identify extract calculate find determine summarize summarise outline propose suggest evaluate "
           "discuss show prove draft rewrite translate classify rank estimate recommend",
    # Things people ask to have written; they count only next to a production verb (MAKE).
    CREATIVE: "poem* poetry story stories haiku limerick song* lyrics email* letter blog* essay slogan* "
              "headline* tweet* speech toast joke* roleplay role-play character* persona vivid "
              "descriptive creative catchy persuasive fictional dialogue scene tone friendly casual "
              "rephrase rewrite paraphrase proofread polish | short_story",
    MAKE: "write compose draft craft imagine pretend rephrase rewrite paraphrase proofread polish edit "
          "| act_as",
    # Word problems. A quantity stated relative to another one, or a state to be undone, means the
    # solver must carry an earlier result forward (or invert it): a chained step.
    REF: "than twice thrice half halves rest remaining remainder leftover originally initially "
         "| as_many as_much times_as at_first start_with started_with began_with",
    # The ask is for an amount ...
    ASKNUM: "calculate compute determine | how_many how_much how_long how_far how_old how_fast how_often "
            "how_tall how_big how_heavy what_percentage what_fraction",
    # ... and not for an explanation or a proof (then it is an analysis or a math proof).
    ASKWHY: "why explain* prove proof justif* derive",
}

_EXACT: dict[str, int] = {}
_STEMS: dict[int, dict[str, int]] = {}
_BIGRAMS: dict[tuple[str, str], int] = {}
_BIFIRST: set[str] = set()
for _bit, _words in _LEXICON.items():
    for _w in _words.split():
        if _w == "|":
            continue
        if "_" in _w:
            _a, _b = _w.split("_", 1)
            _BIGRAMS[(_a, _b)] = _BIGRAMS.get((_a, _b), 0) | _bit
            _BIFIRST.add(_a)
        elif _w.endswith("*"):
            _s = _w[:-1]
            _STEMS.setdefault(len(_s), {})
            _STEMS[len(_s)][_s] = _STEMS[len(_s)].get(_s, 0) | _bit
        else:
            _EXACT[_w] = _EXACT.get(_w, 0) | _bit
_STEM_LENS = sorted(_STEMS)
_PUNCT = ".,;:!?\"'()[]{}<>`*_"
_MEMO: dict[str, int] = {}
_CLEAN: dict[str, str] = {}
_MEMO_MAX = 50_000

# Capitalised words that start sentences without naming anyone (function words, calendar names).
_NOT_NAMES = frozenset(
    "the a an if how what when where which who whom whose why he she it they we you i his her hers their "
    "its this that these those there then after before each every in on at for from by with during while "
    "but and so since because as once one two three four five six seven eight nine ten first next last "
    "finally also however given suppose let find calculate determine compute to of all some both "
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december".split())
_NAME = re.compile(r"\b[A-Z][a-z]+")

_LOOKUP = re.compile(
    r"\s*(?:(?:what|who|when|where|which)\s+(?:is|are|was|were|day|year|comes|does|did)\b"
    r"|(?:define|name|spell|translate)\b)")
_LOOKUP_ANY = re.compile("capital of|stand for|meaning of")
_HAS_DIGIT = re.compile(r"\d").search
_ENUM = re.compile(r"(?m)^\s*(?:\d+[.)]|[-*•]|\([a-z0-9]\))\s+")


def _learn(tok: str) -> int:
    """Category bits of one whitespace token (memoised by the caller)."""
    word = tok.strip(_PUNCT)
    mask = 0
    if _HAS_DIGIT(tok):
        mask |= NUM
    end = tok[-1]
    if end in ".!?":
        mask |= SENT
        if end == "?":
            mask |= QUEST
    elif "?" in tok:
        mask |= QUEST
    if word:
        mask |= _EXACT.get(word, 0)
        for n in _STEM_LENS:
            if len(word) < n:
                break
            mask |= _STEMS[n].get(word[:n], 0)
        if word in _BIFIRST and end not in ".!?,;:":
            mask |= BI
    if mask & NUM:
        # Numbers, ids and dates are mostly one-offs: memoising them would fill the memo with
        # tokens never seen again and push the words out (and the memo out of the CPU's caches).
        return mask
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
        _CLEAN.clear()
    _MEMO[tok] = mask
    _CLEAN[tok] = word
    return mask


_BITS_OF: dict[int, tuple[int, ...]] = {}
_COUNTED = (NUM, SENT, QUEST, *_CATS.values())
_CAT_BITS = tuple(_CATS.values())


def _counts(t: str) -> tuple[list[str], dict[int, int]]:
    toks = t.split()
    get = _MEMO.get
    masks = [m if (m := get(x)) is not None else _learn(x) for x in toks]
    cats: dict[int, int] = dict.fromkeys(_COUNTED, 0)
    bi = False
    if len(masks) > 64:
        distinct: dict[int, int] = Counter(masks)
    else:  # a short prompt: Counter's Python-level set-up costs more than counting by hand
        distinct = {}
        for m in masks:
            if m:
                distinct[m] = distinct.get(m, 0) + 1
    for mask, n in distinct.items():
        if not mask:
            continue
        bits = _BITS_OF.get(mask)
        if bits is None:
            bits = _BITS_OF[mask] = tuple(b for b in _COUNTED if mask & b)
        for b in bits:
            cats[b] += n
        if mask & BI:
            bi = True
    if bi:
        clean = _CLEAN
        for i in range(len(masks) - 1):
            if masks[i] & BI:
                nxt = toks[i + 1]
                cur = toks[i]  # the memo may have been cleared since this call looked a token up
                bits2 = _BIGRAMS.get((clean.get(cur) or cur.strip(_PUNCT), clean.get(nxt) or nxt.strip(_PUNCT)), 0)
                if bits2:
                    for b in _CAT_BITS:
                        if bits2 & b:
                            cats[b] += 1
    return toks, cats


def _named(text: str) -> int:
    """How many distinct people or things a word problem names. A capitalised word that starts a
    sentence may be any noun ("Notebooks cost ..."), so there it counts only if it recurs, is
    also capitalised mid-sentence, or is the first one of the text (problems open with their
    protagonist); function words never count."""
    seen: set[str] = set()
    names: set[str] = set()
    text = text[:MAX_CHARS]
    for m in _NAME.finditer(text):
        w = m.group()
        if w.lower() in _NOT_NAMES:
            continue
        before = text[max(0, m.start() - 4):m.start()].rstrip()
        if not seen or w in seen or (before and before[-1] not in ".!?:\"'("):
            names.add(w)
        seen.add(w)
    return len(names)


def features(text: str) -> dict[str, float]:
    """The squashed feature values the score is made of (each about 0..1). For a word problem
    the cross-category cues are 0 and `chained` and `entities` count (see the module docstring)."""
    return dict(zip(WEIGHTS, _values(text), strict=True))


_LOG_300 = math.log1p(300)
_LOG_24 = math.log1p(24)


def _values(text: str) -> tuple[float, ...]:
    """`features()` as a tuple in `WEIGHTS` order: the estimate runs on every request, and
    building dicts was a third of its time. Counts are squashed to [0, 1) by saturation,
    1 - e^(-count/scale), the scale saying how many of a cue make it count fully."""
    t = text[:MAX_CHARS].lower()
    toks, c = _counts(t)
    exp = math.exp
    n_words = len(toks) + max(0, len(text) - MAX_CHARS) // 6
    quantities = c[NUM] + c[NUMWORD]
    steps = quantities + 0.5 * c[REL] if quantities else 0.3 * c[REL]
    code_syntax = 3 * t.count("```") + t.count("{") + t.count(";\n") + t.count("==") + t.count("()") \
        + t.count("def ") + t.count("=>")
    enums = len(_ENUM.findall(t)) if "\n" in t else 0
    head = t[:120]
    lookup = 1.0 if n_words <= 14 and (_LOOKUP.match(head) is not None or _LOOKUP_ANY.search(head) is not None) \
        else 0.0
    creative = 1.0 - exp(-c[CREATIVE] / 1.5) if c[MAKE] else 0.0
    length = min(1.3, math.log1p(n_words) / _LOG_300)
    steps_f = min(1.2, math.log1p(steps) / _LOG_24)
    math_f = 1.0 - exp(-c[MATH] / 2.0)
    if (quantities >= 2 and (c[ASKNUM] > 0 or c[QUEST] > 0) and not c[ASKWHY] and not enums
            and not c[CODE] and not code_syntax and not creative):  # a word problem
        parts = 1.0 - exp(-max(0, c[QUEST] - 1) / 3.0)
        chained = 1.0 - exp(-c[REF] / 2.0)
        entities = 1.0 - exp(-max(0, _named(text) - 1) / 2.0)
        return (length, steps_f, math_f, 0.0, 0.0, 0.0, parts, 0.0, 0.0, lookup, 1.0, chained, entities)
    sentences = max(1, c[SENT])
    code = 1.0 - exp(-(c[CODE] + 2 * code_syntax + (c[CODEISH] if c[CODE] or code_syntax else 0.25 * c[CODEISH]))
                     / 3.0)
    parts = 1.0 - exp(-(max(0, c[QUEST] - 1) + enums + max(0, c[IMPER] - 1) + max(0, sentences - 3) * 0.3) / 3.0)
    return (length, steps_f, math_f, 1.0 - exp(-c[ANALYSIS] / 2.0), 1.0 - exp(-c[PUZZLE] / 2.0), code, parts,
            1.0 - exp(-c[CONSTR] / 3.0), creative, lookup, 0.0, 0.0, 0.0)


#: Hand-set weights (log-odds per unit of feature); see the module docstring for the reasoning.
WEIGHTS: dict[str, float] = {
    "length": 1.6,
    "steps": 1.4,
    "math": 1.2,
    "analysis": 1.1,
    "puzzle": 0.8,
    "code": 1.3,
    "parts": 0.9,
    "constraints": 0.4,
    "creative": -1.3,
    "lookup": -1.5,
    # Word problems only (0 elsewhere). The flag says which signals counted; it adds nothing itself.
    "word_problem": 0.0,
    # Half of "steps": its words partly count there already (twice, half, than ... as relations).
    "chained": 0.7,
    # An indirect sign (a name is not a step), weighted like the other secondary cues.
    "entities": 0.4,
}
BIAS = -2.5


#: `_values()` returns its features in this order (checked below).
_ORDER = ("length", "steps", "math", "analysis", "puzzle", "code", "parts", "constraints", "creative",
          "lookup", "word_problem", "chained", "entities")
assert tuple(WEIGHTS) == _ORDER, "WEIGHTS and _values() must list the features in the same order"
_W = tuple(WEIGHTS.values())


def estimate_complexity(text: str) -> float:
    """0 (trivial) .. 1 (hardest). Pure, deterministic, no I/O."""
    if not text or not text.strip():
        return 0.0
    z = BIAS
    for w, v in zip(_W, _values(text)):  # noqa: B905 - both have len(WEIGHTS) items
        z += w * v
    return round(1.0 / (1.0 + math.exp(-z)), 4)
