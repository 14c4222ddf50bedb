"""Write real (tiny) installed distributions with `legion` entry points onto sys.path.

importlib-metadata discovers them exactly as it discovers pip-installed plugins.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def make_dist(root: Path, dist: str, module: str, body: str, version: str = "1.0.0",
              ep_name: str | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[legion]\n{ep_name or dist} = {module}\n")


def activate(root: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(root))
    for m in list(sys.modules):
        if m.startswith("fakeplug_"):
            del sys.modules[m]
