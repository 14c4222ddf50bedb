"""Boot and shutdown, in the order DESIGN.md fixes:

settings (files → plugin defaults → env) → secrets resolved → plugins loaded (minus blocked)
→ providers configured → discovery warmed (background) → router and pipeline built
→ extensions loaded (skipped when `llm_required` and no provider is ready) → ready.

Shutdown runs the same steps in reverse. `readiness` reports each subsystem.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from pathlib import Path
from typing import Any

from legion_core.hooktypes import Extension
from legion_core.log import configure as configure_logging
from legion_core.log import get_logger
from legion_core.plugins.manager import PluginManager
from legion_core.providers.registry import ProviderRegistry
from legion_core.settings.models import Settings
from legion_core.store.db import Store
from legion_core.store.state import SharedState, SQLiteState

log = get_logger("legion.lifecycle")

SUBSYSTEMS = ("settings", "secrets", "plugins", "providers", "discovery", "router", "pipeline",
              "extensions")


def legion_home() -> Path:
    return Path(os.environ.get("LEGION_HOME") or Path.home() / ".legionio")


async def maybe_await(v: Any) -> Any:
    if inspect.isawaitable(v):
        return await v
    return v


class Legion:
    """The running kernel. Build with `Legion(...)`, then `await legion.start()`.

    Every part can be injected (tests, embedding applications); see `legion_core.container`.
    """

    def __init__(self, *, home: Path | str | None = None, settings: Settings | dict[str, Any] | None = None,
                 plugins: PluginManager | None = None, store: Store | None = None,
                 state: SharedState | None = None, load_entry_points: bool = True,
                 registry: ProviderRegistry | None = None, health_factory: Any = None,
                 router_factory: Any = None, pipeline_factory: Any = None) -> None:
        self.home = Path(home) if home else legion_home()
        self._settings_override = settings
        self.plugins = plugins or PluginManager()
        self._plugins_injected = plugins is not None
        self.load_entry_points = load_entry_points
        self.store = store
        self.state = state
        self.settings: Settings = Settings()
        self.loaded: Any = None  # settings.loader.LoadedSettings (provenance), when loaded from files
        self.registry = registry or ProviderRegistry()
        self._health_factory = health_factory
        self._router_factory = router_factory
        self._pipeline_factory = pipeline_factory
        self.health: Any = None
        self.router: Any = None
        self.pipeline: Any = None
        self.discovery: Any = None
        self.extensions: list[Extension] = []
        self.skipped_extensions: dict[str, str] = {}
        self.readiness: dict[str, str] = {s: "pending" for s in SUBSYSTEMS}
        self._started = False
        self._boot_steps: list[str] = []

    # ------------------------------------------------------------------ queries
    def started(self) -> bool:
        return self._started

    def ready_providers(self) -> list[str]:
        return [n for n in self.registry.names() if self.registry.reachable.get(n) is not False]

    # ------------------------------------------------------------------ boot
    async def start(self) -> Legion:
        if self._started:
            return self
        from legion_core.secrets import resolve_credentials
        from legion_core.settings.loader import load_settings

        # 1. settings (raw files first: they may block plugins before import)
        self.loaded = load_settings(self.home, override=self._settings_override, plugins=None)
        configure_logging(self.loaded.settings.logging.level, self.loaded.settings.logging.format)
        self._step("settings")
        # 2. plugins (blocked ones are never imported), then settings again with their defaults
        if not self._plugins_injected or not self.plugins.records:
            self.plugins.load(self.loaded.settings.plugins.disabled, entry_points=self.load_entry_points)
        self.loaded = load_settings(self.home, override=self._settings_override, plugins=self.plugins)
        self.settings = self.loaded.settings
        self.plugins.hook.legion_register_providers(register=self.registry.register_class)
        self._step("plugins")
        # 3. secrets resolved once (provider credentials; a failure disables auto-enabling only)
        providers = dict(self.settings.llm.providers)
        quiet = False
        if not providers and self._auto_detect_allowed():
            providers = {k: ps for k, cls in self.registry.classes.items()
                         if (ps := cls.auto_settings()) is not None}
            quiet = True  # auto-detected candidates without credentials are not worth a warning
        resolved, unresolved = resolve_credentials(providers, self.registry.classes, self.plugins,
                                                   quiet=quiet)
        self._step("secrets")
        # 4. providers configured
        if quiet:  # auto-detection: only providers whose credentials resolved count
            resolved = {k: v for k, v in resolved.items() if not unresolved.get(k)}
        self.registry.build(self.settings.llm, resolved, unresolved)
        for p in list(self.registry.providers.values()):
            await p.startup()
        self._step("providers")
        # 5. store and shared state
        if self.store is None:
            self.store = Store(self.home / "data" / "legion.db")
        if self.state is None:
            self.state = self._make_state()
        # 6. discovery warmed in the background
        from legion_core.routing.discovery import DiscoveryService

        self.discovery = DiscoveryService(self.registry, self.plugins, self.settings.llm.discovery)
        self.discovery.start()
        self._step("discovery")
        # 7. router and pipeline
        from legion_core.pipeline.pipeline import Pipeline
        from legion_core.routing.health import HealthTracker
        from legion_core.routing.router import Router

        self.health = (self._health_factory or HealthTracker)(self.settings.llm.routing.health)
        self.router = (self._router_factory or Router)(self.settings.llm, self.registry, self.health,
                                                       self.plugins)
        self._step("router")
        self.pipeline = (self._pipeline_factory or Pipeline)(self)
        await maybe_await(self.pipeline.start())
        self._step("pipeline")
        # 8. extensions
        await self._start_extensions()
        self._step("extensions")
        for r in self.plugins.hook.legion_startup(legion=self):
            await maybe_await(r)
        self._started = True
        return self

    def _make_state(self) -> SharedState:
        cfg = self.settings.llm.state
        if cfg.backend == "memory":
            from legion_core.store.state import MemoryState

            return MemoryState()
        if cfg.backend == "redis":
            from legion_core.log import redact
            from legion_core.secrets import is_reference, resolve, schemes_for
            from legion_core.store.redis_state import RedisState

            schemes = schemes_for(self.plugins)
            url = cfg.url
            if isinstance(url, list) or is_reference(url, schemes):  # env://, vault://, chains
                url = resolve(url, schemes)
            redact(url)  # a Redis URL may carry a password
            return RedisState(url or "redis://127.0.0.1:6379/0", prefix=cfg.prefix)
        assert self.store is not None
        return SQLiteState(self.store)

    def _step(self, name: str) -> None:
        self.readiness[name] = "ready"
        self._boot_steps.append(name)

    def _auto_detect_allowed(self) -> bool:
        return not self.settings.llm.providers

    async def _start_extensions(self) -> None:
        found: list[Extension] = []
        self.plugins.hook.legion_register_extensions(register=found.append)
        have_llm = bool(self.ready_providers())
        for ext in found:
            if ext.llm_required and not have_llm:
                reason = "llm_required and no provider is ready"
                self.skipped_extensions[ext.name] = reason
                log.warning("extension skipped: llm_required and no LLM provider is ready",
                            extension=ext.name)
                continue
            await ext.start(self)
            self.extensions.append(ext)

    # ------------------------------------------------------------------ shutdown
    async def shutdown(self) -> None:
        """Reverse order: extensions → hooks → pipeline → discovery → providers → store."""
        if not self._started and not self._boot_steps:
            return
        for ext in reversed(self.extensions):
            try:
                await ext.stop()
            except Exception as e:  # noqa: BLE001
                log.warning("extension failed to stop", extension=ext.name, error=str(e))
        self.extensions.clear()
        self.readiness["extensions"] = "stopped"
        for r in self.plugins.hook.legion_shutdown(legion=self):
            try:
                await maybe_await(r)
            except Exception as e:  # noqa: BLE001
                log.warning("shutdown hook failed", error=str(e))
        if self.pipeline is not None:
            await maybe_await(self.pipeline.close())
        self.readiness["pipeline"] = "stopped"
        self.readiness["router"] = "stopped"
        if self.discovery is not None:
            await self.discovery.stop()
        self.readiness["discovery"] = "stopped"
        for p in reversed(list(self.registry.providers.values())):
            try:
                await p.aclose()
            except Exception as e:  # noqa: BLE001
                log.warning("provider failed to close", provider=p.name, error=str(e))
        self.readiness["providers"] = "stopped"
        if self.store is not None:
            self.store.close()
        self._started = False

    async def __aenter__(self) -> Legion:
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.shutdown()


def run_sync(coro: Any) -> Any:
    """Run a coroutine from sync code (CLI, sync API)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    raise RuntimeError("run_sync() called from a running event loop; await the async form instead")
