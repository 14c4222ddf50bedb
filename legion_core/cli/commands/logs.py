"""`legion logs` and `legion stats`: read the audit log without booting any provider."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import click


class _NoWriter:
    def flush(self) -> None:
        """The CLI only reads; the gateway's writer flushes on its own."""


def _audit() -> Any:
    from legion_core.lifecycle import legion_home
    from legion_core.pipeline.audit import AuditLog
    from legion_core.store.db import Store

    return AuditLog(Store(legion_home() / "data" / "legion.db"), _NoWriter())


def _since(value: str | None) -> float | None:
    """`30m`, `2h`, `7d`, or an ISO timestamp."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return dt.datetime.now(dt.UTC).timestamp() - float(value[:-1]) * units[value[-1]]
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        raise click.BadParameter("use e.g. 30m, 2h, 7d or an ISO timestamp", param_hint="--since") from None


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("-n", "--limit", default=20, show_default=True, help="How many requests.")
    @click.option("--provider", help="Only this provider.")
    @click.option("--tier", help="Only this tier (tier-0 for cache hits).")
    @click.option("--caller", help="Only this caller.")
    @click.option("--status", type=click.Choice(["ok", "error", "refused"]),
                  help="Only this outcome (refused: a guard said no, e.g. a spent budget).")
    @click.option("--cache-hits", is_flag=True, help="Only tier-0 cache hits.")
    @click.option("--since", help="Only newer than this: 30m, 2h, 7d or an ISO time.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def logs(limit: int, provider: str | None, tier: str | None, caller: str | None, status: str | None,
             cache_hits: bool, since: str | None, as_json: bool) -> None:
        """Recent requests from the audit log: time, provider/model/tier, tokens, cost, latency, cache.

        \b
        Examples:
          legion logs
          legion logs -n 50 --provider openai --since 2h
          legion logs --json | jq '.[0].candidates'
        """
        filters: dict[str, Any] = {"provider": provider, "tier": tier, "caller": caller,
                                   "status": status, "since": _since(since)}
        if cache_hits:
            filters["cache_hit"] = True
        rows = _audit().recent(limit, **filters)
        if as_json:
            click.echo(json.dumps(rows, indent=2, default=str))
            return
        if not rows:
            click.echo("no requests logged yet")
            return
        click.echo(f"{'TIME':<19} {'PROVIDER/MODEL':<40} {'TIER':<9} {'TOKENS':>7} {'COST $':>10} "
                   f"{'LATENCY':>9} CACHE  STATUS")
        for r in rows:
            when = dt.datetime.fromtimestamp(r["ts"]).strftime("%Y-%m-%d %H:%M:%S")
            pm = f"{r.get('provider') or '-'}/{r.get('model') or '-'}"
            tokens = (r.get("input_tokens") or 0) + (r.get("output_tokens") or 0)
            cache = "hit" if r.get("cache_hit") else "-"
            st = r.get("status") or "?"
            if st != "ok" and r.get("error"):
                st = f"{st}: {str(r['error'])[:60]}"
            click.echo(f"{when:<19} {pm:<40} {(r.get('tier') or '-'):<9} {tokens:>7} "
                       f"{(r.get('cost_usd') or 0):>10.6f} {(r.get('latency_ms') or 0):>7.0f}ms {cache:<6} {st}")

    @cli.command()
    @click.option("--since", help="Only requests newer than this: 30m, 2h, 7d or an ISO time.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def stats(since: str | None, as_json: bool) -> None:
        """Spend against what the same traffic would have cost on the priciest candidate,
        cache hit rate, failovers and per-tier counts.

        \b
        Examples:
          legion stats
          legion stats --since 7d --json
        """
        audit = _audit()
        s = audit.stats(_since(since))
        tiers: Counter[str] = Counter()
        for r in audit.recent(1_000_000, since=_since(since)):
            tiers["tier-0" if r.get("cache_hit") else (r.get("tier") or "none")] += 1
        s["by_tier"] = dict(tiers)
        if as_json:
            click.echo(json.dumps(s, indent=2, default=str))
            return
        n = s["requests"]
        click.echo(f"requests:        {n}  (errors: {s['errors']})")
        click.echo(f"cost spent:      ${s['cost_usd']:.6f}")
        click.echo(f"priciest route:  ${s['max_cost_usd']:.6f}  (saved ${s['saved_usd']:.6f})")
        click.echo(f"cache hit rate:  {s['cache_hit_rate'] * 100:.1f}%  ({s['cache_hits']} hits)")
        click.echo(f"failovers:       {s['failovers']}   escalations: {s['escalations']}")
        click.echo("per tier:        " + (", ".join(f"{t}={c}" for t, c in sorted(tiers.items())) or "-"))
        for m in s["by_model"]:
            click.echo(f"  {m['provider']}/{m['model']} ({m['tier']}): {m['requests']} requests, "
                       f"${m['cost_usd']:.6f}")
