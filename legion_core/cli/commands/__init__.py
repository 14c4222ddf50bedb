"""Built-in commands, one module each."""

from __future__ import annotations

import importlib

import click

MODULES = ("version", "plugins", "config", "completion")


def register(cli: click.Group) -> None:
    for name in MODULES:
        mod = importlib.import_module(f"legion_core.cli.commands.{name}")
        mod.register(cli)
