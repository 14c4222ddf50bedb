"""bench/gateway_instructions.py still runs: its in-process gateway answers every request with a
200 through the real app, dialect, pipeline and llm-openai provider (only the HTTP exchange is
canned), which is what its instruction counts are of."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_in_process_gateway_serves_requests_and_reports_cpu_per_request():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gateway_instructions.py"), "--time", "-n", "50"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr  # it exits non-zero unless every request got a 200
    m = re.match(r"([\d.]+) µs CPU per request \(in process\)$", out.stdout.strip())
    assert m and float(m.group(1)) > 0, out.stdout


def test_taking_a_part_out_reports_what_it_costs():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gateway_instructions.py"), "--time", "-n", "50",
                          "--without", "audit"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    m = re.match(r"([\d.]+) µs CPU per request \(in process\); without audit: ([\d.]+) µs; saves (-?[\d.]+) µs$",
                 out.stdout.strip())
    assert m, out.stdout
    full, part, saves = map(float, m.groups())
    assert full > 0 and part > 0 and abs(full - part - saves) < 0.11
