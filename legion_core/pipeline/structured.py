"""Structured output: answers that must match a JSON schema.

The schema travels in `request.response_format = {"type": "json_schema", "schema": ...}`.
A model with the "json" capability gets it natively; any other model gets the request with
`response_format` removed and the schema spelt out in the system prompt (the prompt fallback).
The answer is parsed (code fences and surrounding prose tolerated) and validated; a failure
gets exactly one repair attempt that shows the model its errors.
"""

from __future__ import annotations

import json
import re
from typing import Any

from legion_core.errors import LegionError
from legion_core.types import ChatRequest, ChatResponse, Message

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S | re.I)


class StructuredOutputInvalid(LegionError):
    """The model's answer did not match the schema, even after one repair attempt."""

    status = 502
    kind = "structured_output_invalid"

    def __init__(self, message: str, errors: list[str] | None = None, text: str = "") -> None:
        super().__init__(message)
        self.errors = errors or []
        self.text = text


def schema_of(request: ChatRequest) -> dict[str, Any] | None:
    rf = request.response_format or {}
    if rf.get("type") == "json_schema":
        s = rf.get("schema") or (rf.get("json_schema") or {}).get("schema")
        return s if isinstance(s, dict) else {}
    return None


def wants_json(request: ChatRequest) -> bool:
    rf = request.response_format or {}
    return rf.get("type") in ("json_object", "json_schema")


def instruction(schema: dict[str, Any] | None) -> str:
    if schema:
        return ("Reply with a single JSON value that matches this JSON schema, and nothing else "
                "(no prose, no code fences):\n" + json.dumps(schema, sort_keys=True))
    return "Reply with a single valid JSON object and nothing else (no prose, no code fences)."


def prompt_fallback(request: ChatRequest) -> ChatRequest:
    """The request for a model without native JSON mode: the schema moves into the prompt."""
    text = instruction(schema_of(request))
    system = f"{request.system}\n\n{text}" if request.system else text
    return request.model_copy(update={"response_format": None, "system": system})


def extract_json(text: str) -> Any:
    """Parse the JSON in a model's answer. Raises ValueError when there is none."""
    t = text.strip()
    try:
        return json.loads(t)
    except ValueError:
        pass
    m = _FENCE.search(t)
    if m:
        try:
            return json.loads(m.group(1).strip())
        except ValueError:
            pass
    for open_, close in (("{", "}"), ("[", "]")):
        i, j = t.find(open_), t.rfind(close)
        if 0 <= i < j:
            try:
                return json.loads(t[i:j + 1])
            except ValueError:
                continue
    raise ValueError("the answer contains no valid JSON")


# ------------------------------------------------------------------ validation
_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def validate(value: Any, schema: dict[str, Any] | None) -> list[str]:
    """Errors (empty when valid). Uses `jsonschema` when installed, else a small validator that
    covers type, properties, required, additionalProperties, items, enum, const, min/max,
    minLength/maxLength, minItems/maxItems and anyOf."""
    if not schema:
        return []
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return _validate(value, schema, "$")
    v = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path)) or '$'}: {e.message}" for e in v.iter_errors(value)]


def _type_ok(value: Any, t: str) -> bool:
    py = _TYPES.get(t)
    if py is None:
        return True
    if t in ("integer", "number") and isinstance(value, bool):
        return False
    if t == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, py)


def _validate(value: Any, s: dict[str, Any], path: str) -> list[str]:
    errs: list[str] = []
    t = s.get("type")
    if t is not None:
        types = t if isinstance(t, list) else [t]
        if not any(_type_ok(value, x) for x in types):
            return [f"{path}: expected {' or '.join(types)}, got {type(value).__name__}"]
    if "enum" in s and value not in s["enum"]:
        errs.append(f"{path}: {value!r} is not one of {s['enum']!r}")
    if "const" in s and value != s["const"]:
        errs.append(f"{path}: expected {s['const']!r}")
    if "anyOf" in s and all(_validate(value, sub, path) for sub in s["anyOf"]):
        errs.append(f"{path}: matches none of anyOf")
    if isinstance(value, dict):
        props = s.get("properties", {})
        for r in s.get("required", []):
            if r not in value:
                errs.append(f"{path}: missing required property {r!r}")
        for k, v in value.items():
            if k in props:
                errs += _validate(v, props[k], f"{path}.{k}")
            elif s.get("additionalProperties") is False:
                errs.append(f"{path}: unexpected property {k!r}")
            elif isinstance(s.get("additionalProperties"), dict):
                errs += _validate(v, s["additionalProperties"], f"{path}.{k}")
    if isinstance(value, list):
        if isinstance(s.get("items"), dict):
            for i, v in enumerate(value):
                errs += _validate(v, s["items"], f"{path}[{i}]")
        if "minItems" in s and len(value) < s["minItems"]:
            errs.append(f"{path}: fewer than {s['minItems']} items")
        if "maxItems" in s and len(value) > s["maxItems"]:
            errs.append(f"{path}: more than {s['maxItems']} items")
    if isinstance(value, str):
        if "minLength" in s and len(value) < s["minLength"]:
            errs.append(f"{path}: shorter than {s['minLength']}")
        if "maxLength" in s and len(value) > s["maxLength"]:
            errs.append(f"{path}: longer than {s['maxLength']}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in s and value < s["minimum"]:
            errs.append(f"{path}: below minimum {s['minimum']}")
        if "maximum" in s and value > s["maximum"]:
            errs.append(f"{path}: above maximum {s['maximum']}")
    return errs


def check(request: ChatRequest, response: ChatResponse) -> tuple[Any, list[str]]:
    """(parsed value, errors) for a response to a JSON request."""
    try:
        value = extract_json(response.text)
    except ValueError as e:
        return None, [str(e)]
    return value, validate(value, schema_of(request))


def repair_request(request: ChatRequest, response: ChatResponse, errors: list[str]) -> ChatRequest:
    """The one repair attempt: the bad answer plus what was wrong with it."""
    fix = ("Your previous answer was not valid: " + "; ".join(errors[:10]) + ". "
           + instruction(schema_of(request)))
    msgs = [*request.messages, Message(role="assistant", content=response.text or "(empty)"),
            Message(role="user", content=fix)]
    return request.model_copy(update={"messages": msgs, "cache": False})
