"""Reading load from each source, and turning each reading into one number in [0, ∞): the load.

1.0 means "full": every running slot used, the KV cache full, or the GPU at 100%. Queued
requests push it past 1.0. Parsers are pure functions, so the wire formats are tested on
fixtures; the fetchers are thin.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

# ------------------------------------------------------------------ vLLM /metrics
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
#: vLLM v0 name, and the v1 name that replaced it (both a 0..1 fraction despite "perc").
KV_CACHE = ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc")
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")


@dataclass(frozen=True)
class VllmStats:
    running: float = 0.0
    waiting: float = 0.0
    kv_cache: float | None = None

    def load(self, max_running: int, max_waiting: int) -> float:
        parts = [self.running / max_running, self.kv_cache or 0.0]
        if self.waiting > 0:  # a queue means the engine is already full
            parts.append(1.0 + self.waiting / max_waiting)
        return max(parts)

    def detail(self) -> str:
        kv = f" kv_cache={self.kv_cache:.2f}" if self.kv_cache is not None else ""
        return f"vllm running={self.running:g} waiting={self.waiting:g}{kv}"


def parse_prometheus(text: str) -> dict[str, list[float]]:
    """Samples by metric name (labels dropped), from the Prometheus text format."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        try:
            v = float(m.group("value"))
        except ValueError:
            continue
        if math.isnan(v):
            continue
        out.setdefault(m.group("name"), []).append(v)
    return out


def parse_vllm_metrics(text: str) -> VllmStats | None:
    """Sum running/waiting over models; KV-cache usage is the max. None if it is not vLLM."""
    samples = parse_prometheus(text)
    if RUNNING not in samples and WAITING not in samples:
        return None
    kv = next((samples[k] for k in KV_CACHE if k in samples), None)
    return VllmStats(running=sum(samples.get(RUNNING, [0.0])), waiting=sum(samples.get(WAITING, [0.0])),
                     kv_cache=max(kv) if kv else None)


# ------------------------------------------------------------------ Ollama /api/ps
@dataclass(frozen=True)
class OllamaStats:
    models: tuple[str, ...] = ()
    size_vram: int = 0
    size: int = 0

    def load(self, vram_bytes: int | None) -> float | None:
        """VRAM in use as a fraction of the host's; None when the host's VRAM is unknown."""
        if not vram_bytes:
            return None
        return self.size_vram / vram_bytes

    def detail(self) -> str:
        on_gpu = f" on_gpu={self.size_vram / self.size:.0%}" if self.size else ""
        return f"ollama loaded={','.join(self.models) or '-'}{on_gpu}"


def parse_ollama_ps(body: Any) -> OllamaStats:
    models = (body or {}).get("models") or []
    return OllamaStats(
        models=tuple(str(m.get("name") or m.get("model") or "?") for m in models),
        size_vram=sum(int(m.get("size_vram") or 0) for m in models),
        size=sum(int(m.get("size") or 0) for m in models),
    )


# ------------------------------------------------------------------ NVML
@dataclass(frozen=True)
class GpuStats:
    index: int
    utilization: float  # 0..1
    memory_used: int
    memory_total: int

    @property
    def load(self) -> float:
        mem = self.memory_used / self.memory_total if self.memory_total else 0.0
        return max(self.utilization, mem)


@dataclass
class Nvml:
    """NVML through `pynvml` (package `nvidia-ml-py`), or an injected module with the same API."""

    module: Any = None
    available: bool = False
    reason: str = ""
    _count: int = field(default=0, repr=False)

    @classmethod
    def open(cls, module: Any = None) -> Nvml:
        if module is None:
            try:
                import pynvml  # noqa: PLC0415 - imported lazily: most hosts have no GPU
            except ImportError:
                return cls(reason="nvidia-ml-py is not installed")
            module = pynvml
        try:
            module.nvmlInit()
            count = int(module.nvmlDeviceGetCount())
        except Exception as e:  # noqa: BLE001 - NVMLError has many subclasses (no driver, no GPU)
            return cls(module=module, reason=f"NVML unavailable: {type(e).__name__}: {e}")
        if count == 0:
            _safe_shutdown(module)
            return cls(module=module, reason="no GPU found")
        return cls(module=module, available=True, _count=count)

    def read(self) -> list[GpuStats]:
        if not self.available:
            return []
        out = []
        for i in range(self._count):
            h = self.module.nvmlDeviceGetHandleByIndex(i)
            util = self.module.nvmlDeviceGetUtilizationRates(h)
            mem = self.module.nvmlDeviceGetMemoryInfo(h)
            out.append(GpuStats(i, float(util.gpu) / 100.0, int(mem.used), int(mem.total)))
        return out

    def close(self) -> None:
        if self.available:
            _safe_shutdown(self.module)
            self.available = False


def _safe_shutdown(module: Any) -> None:
    try:
        module.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass


def vllm_metrics_url(base_url: str) -> str:
    """vLLM serves `/metrics` at the root, beside the OpenAI API under `/v1`."""
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base + "/metrics"


def ollama_ps_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    if base.endswith("/v1"):
        base = base[:-3]
    return base + "/api/ps"
