"""Discovery: which providers answer, and which models they really have.

Runs in the background (never on a request): every `refresh_interval_seconds` it refreshes
each provider whose last refresh is older than `ttl_seconds`, by calling `provider.health()`
and the `legion_discover_models` hook (results may be awaitables). What it learns goes into
the registry (`set_reachable`, `set_discovered`), which the router reads.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

from legion_core.log import get_logger, scrub
from legion_core.providers.base import Provider
from legion_core.providers.registry import ProviderRegistry
from legion_core.settings.models import DiscoverySettings
from legion_core.types import ModelInfo

log = get_logger("legion.discovery")


class DiscoveryService:
    def __init__(self, registry: ProviderRegistry, plugins: Any, settings: DiscoverySettings | None = None,
                 *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.plugins = plugins
        self.settings = settings or DiscoverySettings()
        self.clock = clock
        #: provider name -> clock time of its last completed refresh
        self.last_refresh: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ background
    def start(self) -> None:
        """Schedule the refresh loop if an event loop is running; never blocks."""
        if not self.settings.enabled or self._task is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # sync callers (CLI explain): no background discovery, routing uses the catalog
        self._task = loop.create_task(self._loop(), name="legion-discovery")

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh_due()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the loop must outlive any single failure
                log.warning("discovery pass failed", error=scrub(f"{type(e).__name__}: {e}"))
            await asyncio.sleep(max(0.05, self.settings.refresh_interval_seconds))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ refresh
    def due(self) -> list[str]:
        """Providers whose discovery data is older than the TTL (or missing)."""
        now = self.clock()
        ttl = self.settings.ttl_seconds
        return [n for n in self.registry.names()
                if n not in self.last_refresh or now - self.last_refresh[n] >= ttl]

    async def refresh_due(self, timeout: float = 2.0) -> dict[str, bool]:
        names = self.due()
        if not names:
            return {}
        results = await asyncio.gather(*(self._refresh_one(n, timeout) for n in names))
        return dict(zip(names, results, strict=True))

    async def refresh(self, name: str | None = None, timeout: float = 2.0) -> dict[str, bool]:
        """Refresh one provider (or all, now, regardless of TTL). Returns name -> reachable."""
        if name is not None:
            if name not in self.registry:
                raise KeyError(f"unknown provider {name!r}; configured: {', '.join(self.registry.names())}")
            return {name: await self._refresh_one(name, timeout)}
        names = self.registry.names()
        results = await asyncio.gather(*(self._refresh_one(n, timeout) for n in names))
        return dict(zip(names, results, strict=True))

    async def _refresh_one(self, name: str, timeout: float) -> bool:
        provider = self.registry.get(name)
        try:
            ok, detail, models = await asyncio.wait_for(self._probe(provider), timeout)
        except TimeoutError:
            ok, detail, models = False, f"no answer within {timeout:g}s", None
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure means "unreachable", with the reason
            ok, detail, models = False, scrub(f"{type(e).__name__}: {e}"), None
        self.registry.set_reachable(name, ok, detail)
        if models is not None:
            self.registry.set_discovered(name, models)
        self.last_refresh[name] = self.clock()
        if not ok:
            log.info("provider unreachable", provider=name, detail=detail)
        return ok

    async def _probe(self, provider: Provider) -> tuple[bool, str, list[ModelInfo] | None]:
        health = await provider.health()
        if not health.ok:
            return False, scrub(health.detail or "health check failed"), None
        models = await self._discover(provider)
        return True, health.detail, models

    async def _discover(self, provider: Provider) -> list[ModelInfo] | None:
        results = list(self.plugins.hook.legion_discover_models(provider=provider))
        found: list[ModelInfo] | None = None
        for r in results:
            if found is not None:  # the first answer won; don't leave others' coroutines unawaited
                if inspect.iscoroutine(r):
                    r.close()
                continue
            if inspect.isawaitable(r):
                r = await r
            if r is not None:
                found = list(r)
        if found is not None:
            return found
        # No plugin knows it: a provider that overrides `list_models` reports its live list.
        if type(provider).list_models is not Provider.list_models:
            return list(await provider.list_models())
        return None

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            n: {
                "reachable": self.registry.reachable.get(n),
                "detail": self.registry.unreachable_detail.get(n, ""),
                "models_discovered": len(self.registry.discovered.get(n, [])) if n in self.registry.discovered
                else None,
                "age_s": round(now - self.last_refresh[n], 1) if n in self.last_refresh else None,
            }
            for n in self.registry.names()
        }
