from __future__ import annotations

import json

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--all", "include_builtin", is_flag=True, help="Include the kernel's internal plugins.")
    def plugins(as_json: bool, include_builtin: bool) -> None:
        """List installed plugins: active, blocked or failed (with the reason).

        \b
        Examples:
          legion plugins
          legion plugins --json
          LEGION_DISABLE_PLUGINS=legion-signal-gpu legion plugins
        """
        from legion_core.cli.context import cli_plugins

        recs = cli_plugins().plugins(include_builtin=include_builtin)
        if as_json:
            click.echo(json.dumps([r.as_dict() for r in recs], indent=2))
            return
        if not recs:
            click.echo("no plugins installed")
            return
        for r in recs:
            line = f"{r.name:<18} {r.distribution or '-':<26} {r.version or '-':<8} {r.status}"
            if r.reason:
                line += f" ({r.reason})"
            click.echo(line)
            if r.hooks:
                click.echo(f"{'':<18} hooks: {', '.join(r.hooks)}")
