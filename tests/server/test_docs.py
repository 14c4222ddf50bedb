"""Every Python example in docs/gateway.md runs against a live gateway."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_doc_example_runs(gateway, index):
    from legion_core.server.metrics import gauges

    code = BLOCKS[index].replace("http://127.0.0.1:4567", gateway.url)
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"docs/gateway.md[python block {index}]", "exec"), {"__name__": "__doc__"})
    finally:
        gauges.remove("legion_budget_used_ratio")
        gauges.remove("legion_queue_depth")
    if any("print(" in line and not line.lstrip().startswith("#") for line in code.splitlines()):
        assert out.getvalue().strip(), "the example printed nothing"
