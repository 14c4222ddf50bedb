from __future__ import annotations

import click

SHELLS = {"bash": "bash_source", "zsh": "zsh_source", "fish": "fish_source"}


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("shell", type=click.Choice(sorted(SHELLS)), default="bash")
    def completion(shell: str) -> None:
        """Print a shell-completion script.

        \b
        Examples:
          legion completion bash >> ~/.bashrc
          eval "$(legion completion zsh)"
        """
        from click.shell_completion import get_completion_class

        cls = get_completion_class(shell)
        assert cls is not None
        comp = cls(cli, {}, "legion", "_LEGION_COMPLETE")
        click.echo(comp.source())
