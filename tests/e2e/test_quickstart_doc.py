"""docs/quickstart.md is tested: every `$ legion ...` command in a ```console block runs, against
the real embedded model, in a fresh LEGION_HOME; its output must have the documented shape.

Shape: each documented line becomes a pattern in which numbers and the model's own words
(anything after `] > `) are wildcards; everything else — who answered, tiers, layout — must match.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
LEGION = shutil.which("legion", path=os.path.dirname(sys.executable)) or "legion"

pytest.importorskip("legion_llm_llamacpp", reason="the quickstart runs on the embedded llama.cpp provider")
pytestmark = pytest.mark.slow


def console_blocks(text: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            elif steps:
                steps[-1][1].append(line)
    return steps


def pattern(line: str) -> re.Pattern[str]:
    head, sep, _ = line.partition("] > ")
    if sep and line.startswith("legion ["):
        return re.compile(re.escape(head + sep) + ".*")
    parts = re.split(r"\d+(?:\.\d+)?", line)
    body = r"\d+(?:\.\d+)?".join(re.escape(p) for p in parts)
    # Column widths follow the numbers' widths; compare with runs of spaces folded.
    body = re.sub(r"(\\ )+", r"\\s+", body)
    return re.compile(body.rstrip() + r"\s*")


def test_the_doc_has_commands():
    steps = console_blocks(DOC.read_text())
    assert [cmd.split()[1] for cmd, _ in steps][:2] == ["chat", "chat"]
    assert len(steps) >= 5


def test_every_documented_command_prints_what_the_doc_shows(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    env.update({"LEGION_HOME": str(tmp_path), "LEGION_PLUGINS": "legion-llm-llamacpp"})
    for cmd, expected in console_blocks(DOC.read_text()):
        args = re.findall(r'"[^"]*"|\S+', cmd)
        args = [a.strip('"') for a in args]
        assert args[0] == "legion"
        proc = subprocess.run([LEGION, *args[1:]], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
        got = proc.stdout.splitlines()
        assert len(got) == len(expected), f"{cmd}: got\n{proc.stdout}"
        for want, have in zip(expected, got, strict=True):
            assert pattern(want).fullmatch(have), f"{cmd}:\n  doc: {want}\n  got: {have}"
