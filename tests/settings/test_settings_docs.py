"""docs/settings.md is tested: its JSON loads, its env examples parse as documented, its error
examples are what the loader really prints, its Python runs, and every kernel key is documented."""

from __future__ import annotations

import json
import re
import shlex
import types
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from legion_core.errors import SettingsError
from legion_core.settings.loader import load_settings
from legion_core.settings.models import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.parametrize("i", range(len(blocks("json"))))
def test_json_examples_load(i, home, write):
    write("10-example.json", blocks("json")[i])
    load_settings(home)


def test_there_are_examples_of_both_seed_shapes_and_the_shorthand(home, write):
    kinds = set()
    for text in blocks("json"):
        write("10-example.json", text)
        llm = load_settings(home).raw["llm"]
        kinds |= {k for k in ("provider", "providers", "routing") if k in llm}
    assert kinds == {"provider", "providers", "routing"}


def test_env_examples_parse_as_documented(home, monkeypatch):
    (sh,) = blocks("sh")
    for line in sh.splitlines():
        name, _, value = line.split("#")[0].strip().partition("=")
        monkeypatch.setenv(name, shlex.split(value)[0])
    loaded = load_settings(home)
    llm = loaded.settings.llm
    assert llm.routing.strategy == "latency_optimized"
    assert llm.tool_loop_limit == 3
    assert llm.cache.enabled is False
    assert llm.providers["ollama"].base_url == "http://127.0.0.1:11434"
    assert [r.name for r in llm.routing.rules] == ["all-local"]
    assert loaded.settings.section("budget") == {"daily_usd": 12.5}


def _doc_errors() -> list[str]:
    (text,) = [b for b in blocks("text") if "SettingsError" not in b and "key '" in b]
    return text.strip().splitlines()


def _error_for(home, monkeypatch, scenario: str) -> str:
    settings = home / "settings"
    if scenario.startswith("env:"):
        monkeypatch.setenv("LEGION__LLM__ROUTING__STRATEGY", "fastest")
    files = {
        "rules-type": ("20-rules.json", {"llm": {"routing": {"rules": [
            {"name": "a"}, {"name": "b", "priority": "high"}]}}}),
        "json": ("10-llm.json", '{\n  "llm": {\n    "model": "x"\n    "provider": "openai"\n  }\n}\n'),
        "typo": ("10-llm.json", {"llm": {"model": "gpt-4o-mini", "routign": {"strategy": "round_robin"}}}),
        "section": ("10-llm.json", {"lmm": {"provider": "openai"}}),
        "missing": ("20-rules.json", {"llm": {"routing": {"rules": [{"priority": 5}]}}}),
    }
    if scenario in files:
        name, body = files[scenario]
        (settings / name).write_text(body if isinstance(body, str) else json.dumps(body, indent=2))
    with pytest.raises(SettingsError) as info:
        load_settings(home)
    return str(info.value).replace(str(settings), "/home/me/.legionio/settings")


@pytest.mark.parametrize("scenario", ["rules-type", "env:", "json", "typo", "section", "missing"])
def test_error_examples_are_real(scenario, home, monkeypatch):
    real = _error_for(home, monkeypatch, scenario)
    documented = [d for d in _doc_errors() if d.split("...")[0] and real.startswith(d.split("...")[0])]
    assert documented, f"docs/settings.md has no example matching the real error:\n{real}"
    assert any(real == d or (d.endswith("...)") and "..." in d) for d in documented)


def test_python_example_runs(home, monkeypatch, tmp_path):
    fake_home = tmp_path / "user"
    (fake_home / ".legionio" / "settings").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(fake_home))
    (code,) = blocks("python")
    printed: list[tuple] = []
    exec(compile(code, str(DOC), "exec"), {"print": lambda *a: printed.append(a)})
    assert ("llm.tool_loop_limit", 3, "override") in printed


# ------------------------------------------------------------------ every key documented
def _unwrap(tp: typing.Any) -> typing.Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for a in typing.get_args(tp):
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
    return tp


def _is_model(tp: typing.Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def kernel_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        tp = _unwrap(f.annotation)
        args = typing.get_args(tp)
        if _is_model(tp):
            out += kernel_keys(tp, path)
        elif typing.get_origin(tp) is dict and _is_model(args[1]):
            out += kernel_keys(args[1], path + ".<*>")
        elif typing.get_origin(tp) is list and _is_model(args[0]):
            out += kernel_keys(args[0], path + "[]")
        else:
            out.append(path)
    return out


def test_every_kernel_key_is_in_the_reference():
    doc = re.sub(r"<[a-z_]+>", "<*>", DOC.read_text())
    keys = kernel_keys()
    assert len(keys) > 80
    missing = [k for k in keys if f"`{k}`" not in doc]
    assert not missing, f"document these keys in docs/settings.md: {missing}"
