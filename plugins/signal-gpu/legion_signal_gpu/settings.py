"""The `gpu` settings section."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuProviderSettings(_Strict):
    """`gpu.providers.<name>`: where to read one provider's load (overrides auto-detection)."""

    #: Poll this provider at all (auto-detected local/fleet providers are polled by default).
    enabled: bool = True
    #: Which signal source to use; "auto" picks by provider type (vllm → vllm, ollama → ollama).
    source: Literal["auto", "vllm", "ollama", "nvml", "none"] = "auto"
    #: vLLM Prometheus endpoint; default `<base_url without /v1>/metrics`.
    metrics_url: str | None = None
    #: Ollama endpoint; default `<base_url>/api/ps`.
    ps_url: str | None = None
    #: Running requests that count as a full GPU (vLLM `--max-num-seqs`, or what you consider busy).
    max_running: int = Field(default=16, gt=0)
    #: Queued requests that count as a full GPU.
    max_waiting: int = Field(default=4, gt=0)
    #: VRAM of the host, for Ollama memory load when NVML cannot tell (bytes).
    vram_bytes: int | None = Field(default=None, gt=0)
    #: Local GPUs (NVML indices) this provider runs on; default all, for local-tier providers.
    gpu_indices: list[int] | None = None


class GpuSettings(_Strict):
    enabled: bool = True
    interval_seconds: float = Field(default=5.0, gt=0)
    timeout_seconds: float = Field(default=1.0, gt=0)
    #: Use NVML (`nvidia-ml-py`) when importable and a GPU is present.
    nvml: bool = True
    #: Load (0..1) where the penalty starts.
    soft_threshold: float = Field(default=0.6, ge=0, le=1)
    #: Load above which the provider is marked unhealthy (removed from the pool for the request).
    hard_threshold: float = Field(default=0.95, gt=0)
    #: Penalty at the hard threshold; grows quadratically from 0 at `soft_threshold`.
    max_penalty: float = Field(default=10.0, ge=0)
    #: Tiers polled automatically (other providers only when listed under `providers`).
    tiers: list[str] = Field(default_factory=lambda: ["local", "fleet"])
    #: A reading older than this many intervals is ignored (stale instead of misleading).
    stale_after_intervals: float = Field(default=3.0, gt=0)
    providers: dict[str, GpuProviderSettings] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _ordered(self) -> GpuSettings:
        if self.hard_threshold <= self.soft_threshold:
            raise ValueError(f"hard_threshold ({self.hard_threshold}) must be above soft_threshold "
                             f"({self.soft_threshold})")
        return self
