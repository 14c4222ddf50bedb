"""Root click group: error handling (one readable line + hint; `--debug` for tracebacks),
built-in commands, and plugin commands (a broken plugin never takes the CLI down)."""

from __future__ import annotations

from typing import Any

import click

from legion_core.errors import LegionError
from legion_core.log import scrub

HINTS: dict[str, str] = {
    "settings": "run `legion config check` to see the full error, or fix the file named above",
    "no_provider": "configure a provider (`legion init`) or check `legion models` for unavailable ones",
    "plugin": "run `legion plugins` to see which plugin failed, or set LEGION_DISABLE_PLUGINS",
    "secret": "check the reference (env var set? VAULT_ADDR/VAULT_TOKEN correct?)",
}


class LegionGroup(click.Group):
    """Turns LegionErrors (and unexpected ones) into one line, unless --debug."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except LegionError as e:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            hint = HINTS.get(e.kind)
            click.echo(f"error: {scrub(str(e))}", err=True)
            if hint:
                click.echo(f"hint: {hint}", err=True)
            ctx.exit(1)
        except Exception as e:  # noqa: BLE001 - the CLI shows one line, --debug shows the rest
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {type(e).__name__}: {scrub(str(e))}", err=True)
            click.echo("hint: re-run with --debug for the traceback", err=True)
            ctx.exit(1)


@click.group(cls=LegionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Legion: route every LLM request to the right model.

    \b
    Examples:
      legion chat "What day comes after Tuesday?"
      legion serve --port 4567
      legion route --explain "Compare three sorting algorithms"
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if debug:
        from legion_core.log import configure

        configure(level="debug")


def _register_builtin_commands() -> None:
    from legion_core.cli import commands

    commands.register(cli)


def _register_plugin_commands() -> None:
    """Ask plugins for commands; failures are recorded by the manager, never fatal here."""
    from legion_core.cli.context import cli_plugins

    try:
        pm = cli_plugins()
        pm.hook.legion_register_commands(cli=cli)
    except Exception as e:  # noqa: BLE001
        click.echo(f"warning: plugin commands unavailable: {scrub(str(e))}", err=True)


_register_builtin_commands()


def main(argv: list[str] | None = None) -> None:
    # Plugin commands only when they could be asked for (keeps `legion --help` fast and safe).
    _register_plugin_commands()
    cli.main(args=argv, prog_name="legion")


if __name__ == "__main__":  # pragma: no cover
    main()
