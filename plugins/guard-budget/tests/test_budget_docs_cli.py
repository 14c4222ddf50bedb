"""docs/plugins/guard-budget.md matches the settings model, and `legion budget` reads the store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from legion_guard_budget.cli import budget
from legion_guard_budget.guard import BudgetGuard
from legion_guard_budget.metrics import HELP
from legion_guard_budget.settings import BudgetSettings, ProviderBudget

from legion_core.store.db import Store
from legion_core.store.state import SQLiteState

DOC = Path(__file__).resolve().parents[3] / "docs" / "plugins" / "guard-budget.md"


@pytest.fixture(scope="module")
def doc():
    if not DOC.exists():
        pytest.skip("docs are not shipped with the distribution")
    return DOC.read_text()


def test_doc_example_validates(doc):
    [example] = re.findall(r"```json\n(.*?)```", doc, flags=re.S)
    s = BudgetSettings.model_validate(json.loads(example)["budget"])
    assert s.timezone == "Europe/Paris" and s.providers["openai"].per_request_usd == 0.5


def test_doc_table_lists_every_setting_and_metric(doc):
    keys = set(re.findall(r"^\| `([\w.<>]+)` \|", doc, flags=re.M))
    for field in BudgetSettings.model_fields:
        if field != "providers":
            assert field in keys, f"budget.{field} is not documented"
    for field in ProviderBudget.model_fields:
        assert f"providers.<name>.{field}" in keys
    for metric in HELP:
        assert metric in keys, metric


def test_budget_command_shows_todays_spend(tmp_path):
    home = tmp_path / "home"
    (home / "settings").mkdir(parents=True)
    (home / "settings" / "budget.json").write_text(json.dumps(
        {"budget": {"daily_usd": 10, "providers": {"openai": {"daily_usd": 4}}}}))
    store = Store(home / "data" / "legion.db")
    g = BudgetGuard({"daily_usd": 10}, state=SQLiteState(store))
    day = g.periods.day()
    g.state.incr(f"budget:day:{day}:total", 3.12)
    g.state.incr(f"budget:day:{day}:provider:openai", 3.0)
    store.close()
    out = CliRunner().invoke(budget, ["--json", "--home", str(home)])
    assert out.exit_code == 0, out.output
    rows = {r["limit"]: r for r in json.loads(out.output)}
    assert rows["daily"]["spent_usd"] == pytest.approx(3.12) and rows["daily"]["limit_usd"] == 10
    assert rows["provider:openai"]["fraction"] == pytest.approx(0.75)
    text = CliRunner().invoke(budget, ["--home", str(home)])
    assert text.exit_code == 0 and "$3.1200 of $10.00 (31%)" in text.output


def test_budget_command_without_a_store_shows_zero(tmp_path):
    out = CliRunner().invoke(budget, ["--json", "--home", str(tmp_path / "empty")])
    assert out.exit_code == 0 and json.loads(out.output)[0]["spent_usd"] == 0


def test_budget_command_is_registered_on_the_legion_cli():
    import click
    from legion_guard_budget.plugin import BudgetPlugin

    group = click.Group()
    BudgetPlugin().legion_register_commands(group)
    assert "budget" in group.commands


def test_legion_budget_through_the_installed_cli(tmp_path):
    """The real `legion` CLI finds the command through the plugin's entry point."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path as P

    exe = P(sys.executable).with_name("legion")
    exe = str(exe) if exe.exists() else shutil.which("legion")
    if not exe:
        pytest.skip("the legion CLI is not installed in this environment")
    home = tmp_path / "home"
    (home / "settings").mkdir(parents=True)
    (home / "settings" / "budget.json").write_text('{"budget": {"daily_usd": 5}}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEGION_")}
    env["LEGION_HOME"] = str(home)
    r = subprocess.run([exe, "budget", "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    [daily] = json.loads(r.stdout)
    assert daily["limit"] == "daily" and daily["limit_usd"] == 5 and daily["spent_usd"] == 0
