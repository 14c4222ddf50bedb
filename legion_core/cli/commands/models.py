"""`legion models`: the catalog across every enabled provider."""

from __future__ import annotations

import json
from typing import Any

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    def models(as_json: bool) -> None:
        """List models: provider, tier, context window, capabilities and availability.

        Providers are probed (health + discovery, 2 s each) so unreachable ones are marked.

        \b
        Examples:
          legion models
          legion models --json | jq '.[] | select(.available)'
        """
        from legion_core.cli.session import booted

        with booted() as s:
            reg = s.legion.registry
            rows: list[dict[str, Any]] = []
            for name in reg.names():
                reachable = reg.reachable.get(name)
                for m in reg.models(name):
                    available = reachable is not False and m.available is not False
                    rows.append({"provider": name, "model": m.id, "tier": m.tier,
                                 "context_window": m.context_window,
                                 "capabilities": sorted(m.capabilities), "available": available,
                                 "provider_reachable": reachable})
            if as_json:
                click.echo(json.dumps(rows, indent=2))
                return
            if not rows:
                click.echo("no models: no provider is enabled (see `legion plugins`, `legion init`)")
            click.echo(f"{'PROVIDER':<14} {'MODEL':<40} {'TIER':<13} {'CONTEXT':>8}  {'AVAILABLE':<10} CAPABILITIES")
            for r in rows:
                avail = "yes" if r["available"] else "no"
                click.echo(f"{r['provider']:<14} {r['model']:<40} {r['tier']:<13} {r['context_window']:>8}  "
                           f"{avail:<10} {','.join(r['capabilities'])}")
            for name in reg.names():
                if reg.reachable.get(name) is False:
                    where = reg.get(name).base_url or "its endpoint"
                    click.echo(f"WARNING: {name} unreachable at {where} — removed from pool")
