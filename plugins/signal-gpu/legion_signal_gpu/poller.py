"""Background polling. The routing hook only reads `signal_for(name)`: a dict lookup.

Which providers are polled: those listed under `gpu.providers`, plus (auto) every provider whose
tier is in `gpu.tiers` (local, fleet): vLLM-type providers through `/metrics`, Ollama-type ones
through `/api/ps`, other local ones through NVML alone. Local providers also take the host's
NVML load into account. Nothing to read at all: one "no signal" log line, no task, no cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from legion_core.hooktypes import ProviderSignal
from legion_core.log import get_logger
from legion_signal_gpu.settings import GpuProviderSettings, GpuSettings
from legion_signal_gpu.sources import (
    GpuStats,
    Nvml,
    ollama_ps_url,
    parse_ollama_ps,
    parse_vllm_metrics,
    vllm_metrics_url,
)

log = get_logger("legion.signal.gpu")


@dataclass(frozen=True)
class Target:
    provider: str
    source: str  # "vllm" | "ollama" | "nvml"
    url: str | None
    local: bool
    cfg: GpuProviderSettings


@dataclass(frozen=True)
class Reading:
    load: float | None
    detail: str
    at: float
    #: Built once per poll, so the routing hook allocates nothing.
    signal: ProviderSignal | None = None


def penalty_for(load: float, s: GpuSettings) -> tuple[float, bool]:
    """0 up to the soft threshold, then quadratic up to `max_penalty` at the hard threshold;
    above the hard threshold the provider is unhealthy (out of the pool for this request)."""
    if load >= s.hard_threshold:
        return s.max_penalty, False
    if load <= s.soft_threshold:
        return 0.0, True
    x = (load - s.soft_threshold) / (s.hard_threshold - s.soft_threshold)
    return round(s.max_penalty * x * x, 4), True


class GpuPoller:
    def __init__(self, settings: GpuSettings, providers: Iterable[Any], *, nvml_module: Any = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.targets = self.plan(providers)
        self.readings: dict[str, Reading] = {}
        self.nvml: Nvml | None = None
        self._nvml_module = nvml_module
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._down: set[str] = set()
        self.no_signal_reason: str | None = None

    # ------------------------------------------------------------------ planning
    def plan(self, providers: Iterable[Any]) -> list[Target]:
        s = self.settings
        out = []
        for p in providers:
            explicit = p.name in s.providers
            cfg = s.providers.get(p.name) or GpuProviderSettings()
            if not cfg.enabled or cfg.source == "none":
                continue
            if not explicit and p.tier not in s.tiers:
                continue
            kind = (getattr(p, "kind", "") or "").lower()
            source: str = cfg.source
            if source == "auto":
                source = ("vllm" if cfg.metrics_url or "vllm" in kind else
                          "ollama" if cfg.ps_url or "ollama" in kind else
                          "nvml" if p.tier == "local" else "")
            base = getattr(p, "base_url", None)
            url = None
            if source == "vllm":
                url = cfg.metrics_url or (vllm_metrics_url(base) if base else None)
            elif source == "ollama":
                url = cfg.ps_url or (ollama_ps_url(base) if base else None)
            if source in ("vllm", "ollama") and not url:
                continue
            if source:
                out.append(Target(p.name, source, url, p.tier == "local", cfg))
        return out

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Open NVML, then poll on an interval in the background (first poll after one interval)."""
        if not self.settings.enabled:
            return
        if self.settings.nvml and any(t.local for t in self.targets):
            self.nvml = await asyncio.to_thread(Nvml.open, self._nvml_module)
        have_http = any(t.url for t in self.targets)
        have_nvml = self.nvml is not None and self.nvml.available
        if not have_http and not have_nvml:
            why = "no local/fleet provider with a vLLM or Ollama endpoint"
            if self.nvml is not None and self.nvml.reason:
                why += f", and {self.nvml.reason}"
            elif not self.targets:
                why = "no local or fleet provider to watch"
            self.no_signal_reason = why
            log.info("gpu signal: no signal", reason=why)  # expected on CPU-only hosts: not a warning
            self.targets = []
            return
        self._task = asyncio.create_task(self._run(), name="legion-signal-gpu")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self.nvml is not None:
            await asyncio.to_thread(self.nvml.close)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.interval_seconds)
            try:
                await self.poll_once()
            except Exception as e:  # noqa: BLE001 - a poll must never kill the loop
                log.warning("gpu signal: poll failed", error=f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------ polling
    async def poll_once(self) -> None:
        gpus: list[GpuStats] = []
        if self.nvml is not None and self.nvml.available:
            gpus = await asyncio.to_thread(self.nvml.read)
        if any(t.url for t in self.targets) and self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout_seconds, trust_env=False)
        results = await asyncio.gather(*(self._poll(t, gpus) for t in self.targets))
        now = self.clock()
        for t, r in zip(self.targets, results, strict=True):
            if r is not None:
                self.readings[t.provider] = Reading(r[0], r[1], now, self._signal(r[0], r[1]))

    async def _poll(self, t: Target, gpus: list[GpuStats]) -> tuple[float | None, str] | None:
        loads: list[float] = []
        details: list[str] = []
        if t.url:
            try:
                resp = await self._client.get(t.url)  # type: ignore[union-attr]
                resp.raise_for_status()
                if t.source == "vllm":
                    stats = parse_vllm_metrics(resp.text)
                    if stats is None:
                        raise ValueError("no vllm:num_requests_* samples in /metrics")
                    loads.append(stats.load(t.cfg.max_running, t.cfg.max_waiting))
                    details.append(stats.detail())
                else:
                    ps = parse_ollama_ps(resp.json())
                    vram = t.cfg.vram_bytes or (sum(g.memory_total for g in self._gpus(t, gpus)) or None)
                    if (load := ps.load(vram)) is not None:
                        loads.append(load)
                    details.append(ps.detail())
                if t.provider in self._down:
                    self._down.discard(t.provider)
                    log.warning("gpu signal: endpoint is back", provider=t.provider, url=t.url)
            except Exception as e:  # noqa: BLE001 - unreachable, bad status, bad body
                if t.provider not in self._down:  # log transitions, not every poll
                    self._down.add(t.provider)
                    log.warning("gpu signal: endpoint unreadable", provider=t.provider, url=t.url,
                                error=f"{type(e).__name__}: {e}")
                self.readings.pop(t.provider, None)
                if not (t.local and gpus):
                    return None
        if t.local and gpus:
            mine = self._gpus(t, gpus)
            if mine:
                loads.append(max(g.load for g in mine))
                details.append("nvml " + " ".join(f"gpu{g.index}={g.load:.2f}" for g in mine))
        if not loads and not details:
            return None
        return (max(loads) if loads else None), "; ".join(details)

    @staticmethod
    def _gpus(t: Target, gpus: list[GpuStats]) -> list[GpuStats]:
        if t.cfg.gpu_indices is None:
            return list(gpus) if t.local else []
        return [g for g in gpus if g.index in t.cfg.gpu_indices]

    # ------------------------------------------------------------------ the hook's read
    def _signal(self, load: float | None, detail: str) -> ProviderSignal:
        if load is None:
            return ProviderSignal("gpu", penalty=0.0, healthy=True, detail=detail)
        pen, healthy = penalty_for(load, self.settings)
        return ProviderSignal("gpu", penalty=pen, healthy=healthy, detail=f"{detail}; load={load:.2f}")

    def signal_for(self, provider: str) -> ProviderSignal | None:
        """The last reading's signal, or None (no reading, or older than the staleness limit)."""
        r = self.readings.get(provider)
        if r is None:
            return None
        if self.clock() - r.at > self.settings.stale_after_intervals * self.settings.interval_seconds:
            return None
        return r.signal
