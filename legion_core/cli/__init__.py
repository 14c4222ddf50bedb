"""The `legion` command line. Each command lives in its own module; plugins add theirs through
the `legion_register_commands` hook."""

from legion_core.cli.app import cli, main

__all__ = ["cli", "main"]
