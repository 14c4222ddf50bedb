"""bench/routing_overhead.py --against still runs: it loads another router.py beside this one and
times both on the same requests (its ratio is how the routing figures in docs/routing.md were
compared on a machine whose speed drifts)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_against_runs_every_configuration_and_reports_a_ratio():
    router_py = ROOT / "legion_core" / "routing" / "router.py"
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "routing_overhead.py"), "--against",
                          str(router_py), "--reps", "1"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = re.findall(r"^\s*(full|router)\s+(\d+)\s+(\d+) \|\s+([\d.]+)\s+([\d.]+)\s+([\d.]+) \| (\d+)/(\d+)$",
                      out.stdout, re.M)
    assert len(rows) == 10, out.stdout
    for _, _, _, a, b, ratio, same, n in rows:
        assert float(a) > 0 and float(b) > 0 and abs(float(b) / float(a) - float(ratio)) < 0.01
        assert same == n == "60"  # the same router decides the same way
