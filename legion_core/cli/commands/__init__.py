"""Built-in commands, one module each."""

from __future__ import annotations

import importlib

import click

MODULES = ("chat", "serve", "models", "route", "logs", "init", "version", "plugins", "config", "completion")


def register(cli: click.Group) -> None:
    """Import each command module lazily-enough: only click definitions run at import."""
    for name in MODULES:
        mod = importlib.import_module(f"legion_core.cli.commands.{name}")
        mod.register(cli)
