"""Structured output (native vs prompt fallback, validation, one repair) and compression."""

import pytest

from legion_core.pipeline import structured
from legion_core.pipeline.compression import NEGATIONS, compress_request, compress_text
from legion_core.types import text_request

SCHEMA = {"type": "object", "properties": {"day": {"type": "string"}, "n": {"type": "integer"}},
          "required": ["day"], "additionalProperties": False}
JSON_REQ = {"type": "json_schema", "schema": SCHEMA}


async def test_native_json_mode_when_the_model_has_it(make_legion, script):
    lg = await make_legion()
    script.then("cld", '{"day": "Wednesday"}')
    r = await lg.pipeline.chat(text_request("Which day?", provider="cld", response_format=JSON_REQ))
    _, sent = script.calls["cld"][0]
    assert sent.response_format == JSON_REQ and not sent.system
    assert structured.extract_json(r.text) == {"day": "Wednesday"}


async def test_prompt_fallback_without_native_json(make_legion, script):
    lg = await make_legion()
    script.then("loc", '```json\n{"day": "Wednesday"}\n```')
    r = await lg.pipeline.chat(text_request("Which day?", provider="loc", response_format=JSON_REQ))
    _, sent = script.calls["loc"][0]
    assert sent.response_format is None and '"required": ["day"]' in sent.system
    assert structured.check(sent.model_copy(update={"response_format": JSON_REQ}), r)[0] == {"day": "Wednesday"}


async def test_one_repair_attempt(make_legion, script):
    lg = await make_legion()
    script.then("loc", '{"day": 3}', '{"day": "Wednesday"}')
    r = await lg.pipeline.chat(text_request("Which day?", provider="loc", response_format=JSON_REQ))
    assert r.text == '{"day": "Wednesday"}' and script.total() == 2
    _, fix = script.calls["loc"][1]
    assert "not valid" in fix.messages[-1].text and "$.day: expected string" in fix.messages[-1].text
    assert fix.messages[-2].role == "assistant"


async def test_invalid_after_repair_is_a_clear_error(make_legion, script):
    lg = await make_legion()
    script.then("loc", "nope", '{"day": "x", "extra": 1}')
    with pytest.raises(structured.StructuredOutputInvalid, match="unexpected property 'extra'"):
        await lg.pipeline.chat(text_request("Which day?", provider="loc", response_format=JSON_REQ))
    assert script.total() == 2


@pytest.mark.parametrize("value,errors", [
    ({"day": "Mon"}, []),
    ({"day": "Mon", "n": 2}, []),
    ({"n": 2}, ["$: missing required property 'day'"]),
    ({"day": "Mon", "n": 2.5}, ["$.n: expected integer, got float"]),
    ({"day": "Mon", "n": True}, ["$.n: expected integer, got bool"]),
    ([1], ["$: expected object, got list"]),
])
def test_small_validator(value, errors):
    assert structured.validate(value, SCHEMA) == errors


def test_extract_json_tolerates_prose():
    assert structured.extract_json('Sure! Here it is: {"a": [1, 2]} Hope that helps.') == {"a": [1, 2]}
    with pytest.raises(ValueError):
        structured.extract_json("no json here")


# ------------------------------------------------------------------ compression
TEXT = """Could you please   explain, basically, why the sky is blue?  Please do not use the word "very".


Just don't skip the code: `the  a` and
```py
x  =  1   # please, the very basic
```
I would like you to never mention the sun. Thanks in advance."""


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_compression_is_deterministic_and_never_grows(level):
    a, b = compress_text(TEXT, level), compress_text(TEXT, level)
    assert a == b and len(a) <= len(TEXT)


def test_compression_levels_remove_more_each_time():
    sizes = [len(compress_text(TEXT, lvl)) for lvl in range(4)]
    assert sizes[0] > sizes[1] > sizes[2] > sizes[3]
    assert compress_text(TEXT, 0) == TEXT


@pytest.mark.parametrize("level", [1, 2, 3])
def test_code_and_quotes_are_never_touched(level):
    out = compress_text(TEXT, level)
    assert "```py\nx  =  1   # please, the very basic\n```" in out
    assert "`the  a`" in out and '"very"' in out


@pytest.mark.parametrize("level", [1, 2, 3])
def test_negations_survive(level):
    out = compress_text(TEXT, level).lower()
    for phrase in ("do not use", "don't skip", "never mention"):
        assert phrase in out
    words = [w.strip(".,!?\"'`").lower() for w in TEXT.split()]
    for w in words:
        if w in NEGATIONS:
            assert w in out


def test_level_2_drops_fillers_and_level_3_articles():
    assert compress_text("Could you please summarize the report? Thanks!", 2) == "Summarize the report?"
    assert compress_text("Could you please summarize the report? Thanks!", 3) == "Summarize report?"
    assert compress_text("Do not remove the file. Do not remove the file.", 3) == "Do not remove file."


def test_invalid_level():
    with pytest.raises(ValueError, match="0-3"):
        compress_text("x", 4)


async def test_request_compress_level_reaches_the_provider(make_legion, script):
    lg = await make_legion()
    await lg.pipeline.chat(text_request("Could you please tell me what day comes after Tuesday?",
                                        compress_level=2, system="Please be   brief."))
    _, sent = script.calls["loc"][0]
    assert sent.messages[0].text == "Tell me what day comes after Tuesday?"
    assert sent.system == "Be brief."


async def test_rule_compress_level_is_applied(make_legion, script):
    rules = [{"name": "squeeze", "when": {}, "then": {"tier": "local", "compress_level": 3}}]
    lg = await make_legion(routing={"rules": rules})
    r = await lg.pipeline.chat(text_request("Please name the day after the Tuesday."))
    assert r.routing.compress_level == 3
    _, sent = script.calls["loc"][0]
    assert sent.messages[0].text == "Name day after Tuesday."


def test_compress_request_leaves_assistant_turns():
    from legion_core.types import Message
    req = text_request("Please  go.")
    req.messages.insert(0, Message(role="assistant", content="Please  stay."))
    out = compress_request(req, 2)
    assert out.messages[0].text == "Please  stay." and out.messages[1].text == "Go."
