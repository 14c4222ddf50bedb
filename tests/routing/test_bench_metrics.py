"""The routing-quality bench computes APGR and CPT exactly as ../shared/routing-eval/README.md
defines them (checked on a hand-worked example), and finds its data via LEGION_ROUTING_EVAL."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "routing_quality.py"


@pytest.fixture(scope="module")
def rq():
    spec = importlib.util.spec_from_file_location("routing_quality", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_hand_worked_example(rq):
    # weak fails the two highest-scored prompts; strong solves everything.
    scores, weak, strong = [0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0], [1, 1, 1, 1]
    pts = rq.curve(scores, weak, strong)
    assert pts[0] == (0.0, 0.5) and pts[-1] == (1.0, 1.0)
    assert (0.25, 0.75) in pts and (0.5, 1.0) in pts
    apgr, cpt = rq.evaluate(scores, weak, strong)
    assert apgr == pytest.approx(0.75)  # AUC 0.875, (0.875 - 0.5) / (1 - 0.5)
    assert cpt == pytest.approx(25.0)


def test_reversed_router_is_worse_than_random(rq):
    scores, weak, strong = [0.4, 0.3, 0.2, 0.1], [1, 1, 0, 0], [1, 1, 1, 1]
    assert rq.evaluate(scores, weak, strong)[0] < 0.5


def test_quantile_is_linear_interpolation(rq):
    assert rq.quantile([0.0, 10.0], 0.25) == 2.5
    assert rq.quantile([1.0, 2.0, 3.0], 0.5) == 2.0


def test_script_runs_on_a_directory_given_by_env(tmp_path):
    rows = [{"id": f"x-{i}", "prompt": p, "weak": w, "strong": 1.0}
            for i, (p, w) in enumerate([("hi", 1.0), ("What day comes after Tuesday?", 1.0),
                                        ("Prove that sqrt(2) is irrational and explain each step.", 0.0),
                                        ("Implement quicksort in Python and analyze its complexity.", 0.0)])]
    (tmp_path / "tiny.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    out = subprocess.run([sys.executable, str(BENCH), "--json"], capture_output=True, text=True, timeout=120,
                         env={"LEGION_ROUTING_EVAL": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)["tiny"]
    assert res["rows"] == 4
    assert res["estimate_complexity"][0] > res["random (50 seeds)"][0]
    assert res["oracle"][0] >= res["estimate_complexity"][0]
