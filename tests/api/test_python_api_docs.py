"""Runs every code example in docs/python-api.md and docs/pipeline.md, in order."""

import json
import re
from pathlib import Path

import pytest

import legion_core
from legion_core.settings.models import Settings
from tests.pipeline.pipeline_fakes import THREE_TIERS, provider

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```(python|json)\n(.*?)```", re.S)

PROVIDERS = {**THREE_TIERS,
             "emb": provider("local", "e1", caps=("embeddings",), model_extra={"embedding": True})}


def answer(request, model):
    if request.response_format or "JSON schema" in (request.system or ""):
        return '{"city": "Tokyo", "population": 14000000}'
    return "Ada. 366 days."


def blocks(name):
    return BLOCK.findall((DOCS / name).read_text())


@pytest.mark.parametrize("doc", ["python-api.md", "pipeline.md"])
def test_doc_json_examples_are_valid_settings(doc):
    for lang, code in blocks(doc):
        if lang == "json":
            Settings.model_validate(json.loads(code))


def test_python_api_examples_run(boot, script, capsys):
    script.default = answer
    boot(PROVIDERS)
    ns = {}
    code = [c for lang, c in blocks("python-api.md") if lang == "python"]
    assert len(code) >= 8
    for c in code:
        exec(compile(c, "docs/python-api.md", "exec"), ns)  # noqa: S102 - our own docs
    out = capsys.readouterr().out
    assert "Tokyo" in out and "loc" in out
    assert not legion_core.started(), "the last example shuts Legion down"


def test_pipeline_examples_run(boot, script):
    lg = boot(PROVIDERS)
    legion_core.ask("What day comes after Tuesday?", caller="alice")
    ns = {"legion": lg}
    for lang, c in blocks("pipeline.md"):
        if lang == "python":
            exec(compile(c, "docs/pipeline.md", "exec"), ns)  # noqa: S102
    assert ns["stats"]["requests"] == 1 and ns["rows"] == []
