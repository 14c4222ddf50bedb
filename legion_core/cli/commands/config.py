from __future__ import annotations

import json

import click


def register(cli: click.Group) -> None:
    @cli.group(invoke_without_command=True)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.pass_context
    def config(ctx: click.Context, as_json: bool) -> None:
        """Show the effective settings (secrets redacted) and where each value came from.

        \b
        Examples:
          legion config
          legion config --json
          legion config check
        """
        if ctx.invoked_subcommand is not None:
            return
        from legion_core.cli.context import cli_plugins
        from legion_core.lifecycle import legion_home
        from legion_core.settings.loader import load_settings
        from legion_core.settings.view import effective_view

        loaded = load_settings(legion_home(), plugins=cli_plugins())
        rows = effective_view(loaded)
        if as_json:
            click.echo(json.dumps([{"key": k, "value": v, "source": s} for k, v, s in rows],
                                  indent=2, default=str))
            return
        click.echo(f"# settings directory: {legion_home() / 'settings'}")
        for key, value, source in rows:
            click.echo(f"{key} = {json.dumps(value, default=str)}    # {source}")

    @config.command("check")
    def config_check() -> None:
        """Validate the settings; exit non-zero with the error (file, key, expected).

        \b
        Example:
          legion config check && legion serve
        """
        from legion_core.cli.context import cli_plugins
        from legion_core.lifecycle import legion_home
        from legion_core.settings.loader import load_settings

        loaded = load_settings(legion_home(), plugins=cli_plugins())
        n = len(loaded.files)
        click.echo(f"settings OK ({n} file{'s' if n != 1 else ''} in {legion_home() / 'settings'})")
