"""The hook implementations. `plugin` is what the `legion` entry point names; tests build
their own `GpuPlugin(nvml_module=fake)` and register it on a fresh manager."""

from __future__ import annotations

from typing import Any

from legion_core.errors import SettingsError
from legion_core.hookspecs import hookimpl
from legion_core.hooktypes import ProviderSignal
from legion_signal_gpu.poller import GpuPoller
from legion_signal_gpu.settings import GpuSettings


def load_settings(raw: dict[str, Any]) -> GpuSettings:
    """Validate the `gpu` section; an error names the key and what was expected."""
    from pydantic import ValidationError

    try:
        return GpuSettings.model_validate(raw or {})
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(["gpu", *(str(p) for p in err["loc"])])
        raise SettingsError(err["msg"], key=key) from None


class GpuPlugin:
    def __init__(self, nvml_module: Any = None) -> None:
        self.nvml_module = nvml_module
        self.poller: GpuPoller | None = None

    @hookimpl
    def legion_settings_schema(self, register: Any) -> None:
        register("gpu", GpuSettings)

    @hookimpl
    def legion_settings_defaults(self) -> dict[str, Any]:
        return {"gpu": {"enabled": True, "interval_seconds": 5.0}}

    @hookimpl
    async def legion_startup(self, legion: Any) -> None:
        settings = load_settings(legion.settings.section("gpu"))
        self.poller = GpuPoller(settings, list(legion.registry.providers.values()),
                                nvml_module=self.nvml_module)
        await self.poller.start()

    @hookimpl
    async def legion_shutdown(self, legion: Any) -> None:
        if self.poller is not None:
            await self.poller.stop()

    @hookimpl
    def legion_provider_signals(self, provider: Any) -> ProviderSignal | None:
        poller = self.poller
        return poller.signal_for(provider.name) if poller is not None else None


plugin = GpuPlugin()
