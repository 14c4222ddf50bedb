"""`types.build`: the hot path's unvalidated constructor must still give what validation gives."""

import pytest

from legion_core.types import Attempt, ChatResponse, TextBlock, Usage, build


def test_build_fills_defaults_like_validation():
    fields = {"model": "m", "provider": "p", "tier": "local", "content": [TextBlock(text="hi")],
              "usage": Usage(input_tokens=3)}
    built, validated = build(ChatResponse, fields), ChatResponse(**fields)
    assert built.model_dump(exclude={"id"}) == validated.model_dump(exclude={"id"})
    assert built.model_fields_set == validated.model_fields_set == set(fields)
    assert built.id.startswith("msg_") and built.id != build(ChatResponse, fields).id  # factories run each time


def test_build_gives_each_instance_its_own_mutable_defaults():
    a = build(Attempt, {"provider": "p", "model": "m", "tier": "local", "outcome": "ok"})
    b = build(Attempt, {"provider": "p", "model": "m", "tier": "local", "outcome": "ok"})
    a.failures.append("too_short")
    assert b.failures == []


def test_build_refuses_a_missing_required_field_or_an_unknown_one():
    with pytest.raises(TypeError, match=r"Attempt: missing \['outcome'\]"):
        build(Attempt, {"provider": "p", "model": "m", "tier": "local"})
    with pytest.raises(TypeError, match=r"unknown \['colour'\]"):
        build(TextBlock, {"text": "x", "colour": "red"})


def test_set_fields_is_assignment_for_several_fields():
    from legion_core.types import set_fields

    r = ChatResponse(model="m")
    set_fields(r, {"cost_usd": 0.5, "provider": "p"})
    assert (r.cost_usd, r.provider) == (0.5, "p") and {"cost_usd", "provider"} <= r.model_fields_set
    with pytest.raises(AttributeError, match=r"ChatResponse has no field\(s\) \['colour'\]"):
        set_fields(r, {"colour": "red"})
