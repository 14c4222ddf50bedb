"""`legion budget`: today's spend against each configured limit, read from the store."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("budget")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="Legion home (default $LEGION_HOME or ~/.legionio).")
def budget(as_json: bool, home: Path | None) -> None:
    """Show today's LLM spend against the budget limits (guard-budget)."""
    from legion_core.lifecycle import legion_home
    from legion_core.store.db import Store
    from legion_core.store.state import SQLiteState
    from legion_guard_budget.guard import BudgetGuard
    from legion_guard_budget.plugin import load_settings

    home = home or legion_home()
    raw: dict = {}
    try:
        from legion_core.settings.loader import load_settings as load_all

        raw = load_all(home).settings.section("budget")
    except ImportError:  # pragma: no cover - a kernel without the loader
        raw = {}
    settings = load_settings(raw)
    db = home / "data" / "legion.db"
    store = Store(db) if db.exists() else None
    try:
        guard = BudgetGuard(settings, state=SQLiteState(store) if store else None)
        rows = guard.status()
    finally:
        if store is not None:
            store.close()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"budget period {rows[0]['period']} ({settings.timezone}), resets {rows[0]['resets_at']}")
    click.echo(f"on_exceed: {settings.on_exceed}")
    for r in rows:
        lim = f"${r['limit_usd']:.2f}" if r["limit_usd"] is not None else "no limit"
        pct = f" ({r['fraction'] * 100:.0f}%)" if r["fraction"] is not None else ""
        click.echo(f"  {r['limit']:<24} ${r['spent_usd']:.4f} of {lim}{pct}")
