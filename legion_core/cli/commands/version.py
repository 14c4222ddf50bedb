from __future__ import annotations

import click

from legion_core import __version__


def register(cli: click.Group) -> None:
    @cli.command()
    def version() -> None:
        """Print legion-core's version and every loaded plugin's.

        \b
        Example:
          legion version
        """
        from legion_core.cli.context import cli_plugins

        click.echo(f"legion-core {__version__}")
        for rec in cli_plugins().plugins():
            if rec.status == "active":
                click.echo(f"{rec.distribution or rec.name} {rec.version or '?'}")
            else:
                click.echo(f"{rec.distribution or rec.name} {rec.version or '?'} ({rec.status})")
