"""What CLI commands share: a plugin manager loaded once, and booting a `Legion`."""

from __future__ import annotations

import functools
import os
from typing import Any

from legion_core.lifecycle import Legion, legion_home
from legion_core.plugins.manager import PluginManager


@functools.lru_cache(maxsize=1)
def cli_plugins() -> PluginManager:
    """Plugins, loaded without booting (for `version`, `plugins`, plugin commands)."""
    pm = PluginManager()
    disabled: list[str] = []
    try:
        from legion_core.settings.loader import load_settings

        disabled = list(load_settings(legion_home()).settings.plugins.disabled)
    except Exception:  # noqa: BLE001 - bad settings must not hide `legion version`
        pass
    pm.load(disabled)
    return pm


def make_legion(**kw: Any) -> Legion:
    """A Legion sharing the CLI's plugin manager (plugins are imported once per process)."""
    return Legion(home=kw.pop("home", None) or os.environ.get("LEGION_HOME") or legion_home(),
                  plugins=cli_plugins(), **kw)
