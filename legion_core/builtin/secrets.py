"""The built-in secret schemes, ``env://`` and ``vault://``, registered like any plugin's."""

from __future__ import annotations

from collections.abc import Callable

from legion_core.hookspecs import hookimpl
from legion_core.secrets import resolve_env, resolve_vault


@hookimpl
def legion_secret_schemes(register: Callable[[str, Callable[[str], str | None]], None]) -> None:
    register("env", resolve_env)
    register("vault", resolve_vault)
