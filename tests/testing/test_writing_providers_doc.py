"""docs/writing-providers.md stays true: every `# file:` code block is written to a temporary
project and its two conformance modules run (in a fresh pytest process, strict asyncio mode,
only the `legion_conformance` entry-point plugin) and pass."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-providers.md"


def files_in_doc() -> dict[str, str]:
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", DOC.read_text(), re.S)
    return {path: code for path, code in blocks}


def test_doc_lists_the_example_files() -> None:
    assert set(files_in_doc()) == {"legion_acme/provider.py", "legion_acme/plugin.py",
                                   "tests/test_acme_conformance.py", "echo_fake.py", "echo_provider.py",
                                   "tests/test_echo_conformance.py"}


def test_doc_examples_pass_the_conformance_suite(tmp_path: Path) -> None:
    for rel, code in files_in_doc().items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code)
    (tmp_path / "legion_acme" / "__init__.py").write_text("")
    xml = tmp_path / "out.xml"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                           "-o", "asyncio_mode=strict", "tests"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    ran = {c.get("classname", "").rsplit(".", 1)[-1]: 0 for c in ET.parse(xml).iter("testcase")}
    for case in ET.parse(xml).iter("testcase"):
        if case.find("skipped") is None:
            ran[case.get("classname", "").rsplit(".", 1)[-1]] += 1
    assert ran["TestAcmeConformance"] >= 35 and ran["TestEchoConformance"] >= 25, ran
