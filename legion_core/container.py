"""Composition root (dependency-injector). Override any part in tests or applications:

    c = Container(home="/tmp/x")
    c.router.override(providers.Factory(MyRouter))
    legion = c.legion()
    await legion.start()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dependency_injector import containers, providers

from legion_core.lifecycle import Legion, legion_home
from legion_core.plugins.manager import PluginManager
from legion_core.providers.registry import ProviderRegistry
from legion_core.store.db import Store
from legion_core.store.state import SQLiteState


def _store(home: Path | str | None) -> Store:
    return Store(Path(home or legion_home()) / "data" / "legion.db")


def _health(*a: Any, **kw: Any) -> Any:
    from legion_core.routing.health import HealthTracker

    return HealthTracker(*a, **kw)


def _router(*a: Any, **kw: Any) -> Any:
    from legion_core.routing.router import Router

    return Router(*a, **kw)


def _pipeline(*a: Any, **kw: Any) -> Any:
    from legion_core.pipeline.pipeline import Pipeline

    return Pipeline(*a, **kw)


class Container(containers.DeclarativeContainer):
    home: providers.Object[Any] = providers.Object(None)
    settings: providers.Object[Any] = providers.Object(None)
    plugin_manager = providers.Singleton(PluginManager)
    registry = providers.Singleton(ProviderRegistry)
    store = providers.Singleton(_store, home)
    state = providers.Singleton(SQLiteState, store)
    health = providers.Factory(_health)
    router = providers.Factory(_router)
    pipeline = providers.Factory(_pipeline)
    legion = providers.Singleton(
        Legion,
        home=home,
        settings=settings,
        plugins=plugin_manager,
        registry=registry,
        store=store,
        state=state,
        health_factory=health.provider,
        router_factory=router.provider,
        pipeline_factory=pipeline.provider,
    )


def build(home: Path | str | None = None, settings: Any = None) -> Container:
    c = Container()
    c.home.override(providers.Object(str(home) if home else None))
    c.settings.override(providers.Object(settings))
    return c
