"""signal-gpu against real fixtures: vLLM /metrics and Ollama /api/ps served on loopback by a
real aiohttp server, and NVML through an injected fake `pynvml` module."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from legion_signal_gpu.plugin import GpuPlugin, load_settings
from legion_signal_gpu.poller import GpuPoller, penalty_for
from legion_signal_gpu.settings import GpuSettings
from legion_signal_gpu.sources import parse_ollama_ps, parse_vllm_metrics, vllm_metrics_url
from structlog.testing import capture_logs

from legion_core.errors import SettingsError
from legion_core.plugins.manager import PluginManager
from legion_core.testing.fakes.base import FakeServer

FIXTURES = Path(__file__).parent / "fixtures"
BUSY = (FIXTURES / "vllm_metrics_busy.txt").read_text()
IDLE = (FIXTURES / "vllm_metrics_idle_v1.txt").read_text()
PS = json.loads((FIXTURES / "ollama_ps.json").read_text())


class GpuEndpoints(FakeServer):
    """vLLM's `/metrics` (Prometheus text 0.0.4) and Ollama's `/api/ps`, as the real servers send them."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics_text = IDLE
        self.ps_body = PS

    def routes(self, app: web.Application) -> None:
        async def metrics(request: web.Request) -> web.Response:
            self.record("metrics", request, None)
            if (f := self.take_fault()) and f.status:
                return web.Response(status=f.status, text=str(f.body or ""))
            return web.Response(text=self.metrics_text,
                                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

        async def ps(request: web.Request) -> web.Response:
            self.record("ps", request, None)
            return web.json_response(self.ps_body)

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/api/ps", ps)


class FakeNvml:
    """The slice of the `pynvml` API the plugin uses."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus=((0.1, 2, 24),), fail_init: bool = False) -> None:
        self.gpus = [list(g) for g in gpus]  # (utilization 0..1, GiB used, GiB total)
        self.fail_init = fail_init
        self.shutdowns = 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=int(self.gpus[h][0] * 100), memory=0)

    def nvmlDeviceGetMemoryInfo(self, h):
        gib = 1024**3
        return SimpleNamespace(used=int(self.gpus[h][1] * gib), total=int(self.gpus[h][2] * gib),
                               free=int((self.gpus[h][2] - self.gpus[h][1]) * gib))

    def nvmlShutdown(self):
        self.shutdowns += 1


def prov(name, kind, tier, base_url=None):
    return SimpleNamespace(name=name, kind=kind, tier=tier, base_url=base_url)


@pytest.fixture
def endpoints():
    with GpuEndpoints() as f:
        yield f


# ------------------------------------------------------------------ parsing and scoring
def test_parse_real_vllm_metrics_fixtures():
    busy = parse_vllm_metrics(BUSY)
    assert (busy.running, busy.waiting, busy.kv_cache) == (14.0, 2.0, 0.8734)
    assert busy.load(max_running=16, max_waiting=4) == pytest.approx(1.5)  # a queue: beyond full
    idle = parse_vllm_metrics(IDLE)  # vLLM v1 renamed the KV-cache gauge
    assert idle.kv_cache == pytest.approx(0.052)
    assert idle.load(16, 4) == pytest.approx(1 / 16)
    assert parse_vllm_metrics("python_gc_objects_collected_total 3\n") is None


def test_parse_ollama_ps_fixture():
    ps = parse_ollama_ps(PS)
    assert ps.models == ("llama3.2:3b",) and ps.size_vram == 3947008000
    assert ps.load(None) is None and ps.load(8 * 10**9) == pytest.approx(0.493, abs=1e-3)


def test_metrics_url_strips_the_openai_prefix():
    assert vllm_metrics_url("http://gpu1:8000/v1") == "http://gpu1:8000/metrics"


def test_penalty_grows_with_load_and_hard_limit_marks_unhealthy():
    s = GpuSettings(soft_threshold=0.5, hard_threshold=0.9, max_penalty=8)
    pens = [penalty_for(x, s) for x in (0.2, 0.5, 0.6, 0.7, 0.8, 0.89)]
    assert pens[0] == pens[1] == (0.0, True)
    values = [p for p, _ in pens[1:]]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(h for _, h in pens)
    assert penalty_for(0.9, s) == (8, False) and penalty_for(1.5, s) == (8, False)


@pytest.mark.parametrize("raw,key", [
    ({"soft_threshold": 0.9, "hard_threshold": 0.5}, "gpu"),
    ({"interval_seconds": 0}, "gpu.interval_seconds"),
    ({"providers": {"v": {"source": "cuda"}}}, "gpu.providers.v.source"),
])
def test_bad_settings_name_the_key(raw, key):
    with pytest.raises(SettingsError) as ei:
        load_settings(raw)
    assert f"key '{key}'" in str(ei.value)


# ------------------------------------------------------------------ polling real endpoints
async def test_vllm_endpoint_turns_into_a_penalty_and_then_unhealthy(endpoints):
    s = GpuSettings()
    p = GpuPoller(s, [prov("gpu1", "vllm", "fleet", endpoints.url + "/v1")])
    assert [t.source for t in p.targets] == ["vllm"]
    await p.poll_once()
    idle = p.signal_for("gpu1")
    assert idle.healthy and idle.penalty == 0.0 and "running=1" in idle.detail
    endpoints.metrics_text = BUSY.replace('} 2.0', '} 0.0')  # 14/16 running, KV 87%: loaded
    await p.poll_once()
    loaded = p.signal_for("gpu1")
    assert loaded.healthy and 0 < loaded.penalty < s.max_penalty
    endpoints.metrics_text = BUSY  # 2 waiting: saturated
    await p.poll_once()
    sat = p.signal_for("gpu1")
    assert not sat.healthy and sat.penalty == s.max_penalty
    assert endpoints.calls["metrics"] == 3
    await p.stop()


async def test_ollama_endpoint_reports_loaded_models_and_memory(endpoints):
    s = GpuSettings(providers={"ol": {"vram_bytes": 8 * 10**9}, "small": {"vram_bytes": 4.2e9}})
    p = GpuPoller(s, [prov("ol", "ollama", "local", endpoints.url),
                      prov("small", "ollama", "local", endpoints.url)])
    await p.poll_once()
    sig = p.signal_for("ol")
    assert "llama3.2:3b" in sig.detail and "on_gpu=100%" in sig.detail
    assert sig.healthy and sig.penalty == 0  # 3.9 of 8 GB
    small = p.signal_for("small")
    assert small.healthy and small.penalty > 0  # 3.9 of 4.2 GB: between the thresholds
    assert endpoints.calls["ps"] == 2
    await p.stop()


async def test_unreachable_endpoint_is_logged_once_and_gives_no_signal(endpoints):
    p = GpuPoller(GpuSettings(), [prov("gpu1", "vllm", "fleet", endpoints.url)])
    endpoints.fail_next(503, "overloaded", times=2)
    with capture_logs() as logs:
        await p.poll_once()
        await p.poll_once()
    assert sum(e["event"] == "gpu signal: endpoint unreadable" for e in logs) == 1
    assert p.signal_for("gpu1") is None
    with capture_logs() as logs:
        await p.poll_once()
    assert [e["event"] for e in logs] == ["gpu signal: endpoint is back"]
    assert p.signal_for("gpu1") is not None
    await p.stop()


async def test_stale_readings_are_ignored(endpoints):
    now = [100.0]
    p = GpuPoller(GpuSettings(interval_seconds=5), [prov("gpu1", "vllm", "fleet", endpoints.url)],
                  clock=lambda: now[0])
    await p.poll_once()
    assert p.signal_for("gpu1") is not None
    now[0] += 16  # more than 3 intervals without a fresh reading
    assert p.signal_for("gpu1") is None
    await p.stop()


# ------------------------------------------------------------------ NVML
async def test_fake_nvml_feeds_local_providers_only():
    nv = FakeNvml(gpus=[(0.97, 10, 24), (0.2, 2, 24)])
    s = GpuSettings(providers={"pinned": {"gpu_indices": [1]}})
    p = GpuPoller(s, [prov("llama", "llamacpp", "local"), prov("pinned", "llamacpp", "local"),
                      prov("cloud", "openai", "cloud"), prov("remote", "openai", "fleet")],
                  nvml_module=nv)
    assert {t.provider for t in p.targets} == {"llama", "pinned"}
    await p.start()
    assert p.running
    await p.poll_once()
    busy, pinned = p.signal_for("llama"), p.signal_for("pinned")
    assert not busy.healthy and "gpu0=0.97" in busy.detail
    assert pinned.healthy and pinned.penalty == 0 and "gpu0" not in pinned.detail
    assert p.signal_for("cloud") is None and p.signal_for("remote") is None
    await p.stop()
    assert not p.running and nv.shutdowns == 1


async def test_no_gpu_and_no_endpoints_logs_no_signal_once_and_costs_nothing():
    nv = FakeNvml(fail_init=True)
    pm = PluginManager()
    plugin = GpuPlugin(nvml_module=nv)
    pm.register(plugin, name="signal-gpu")
    legion = SimpleNamespace(settings=SimpleNamespace(section=lambda name: {}),
                             registry=SimpleNamespace(providers={"llama": prov("llama", "llamacpp", "local")}))
    from legion_core.log import configure

    configure(level="info")  # "no signal" is info: CPU-only hosts are normal, not a warning
    with capture_logs() as logs:
        for r in pm.hook.legion_startup(legion=legion):
            await r
        for _ in range(3):
            assert pm.hook.legion_provider_signals(provider=prov("llama", "llamacpp", "local")) == []
    no_signal = [e for e in logs if e["event"] == "gpu signal: no signal"]
    assert len(no_signal) == 1 and "Driver Not Loaded" in no_signal[0]["reason"]
    assert len(logs) == 1 and no_signal[0]["log_level"] == "info"
    configure()
    assert not plugin.poller.running and plugin.poller.targets == []
    for r in pm.hook.legion_shutdown(legion=legion):
        await r


async def test_background_polling_runs_on_the_interval(endpoints):
    import asyncio

    p = GpuPoller(GpuSettings(interval_seconds=0.05), [prov("gpu1", "vllm", "fleet", endpoints.url)])
    await p.start()
    for _ in range(200):
        if endpoints.calls["metrics"] >= 2:
            break
        await asyncio.sleep(0.02)
    assert endpoints.calls["metrics"] >= 2 and p.signal_for("gpu1") is not None
    await p.stop()
    n = endpoints.calls["metrics"]
    await asyncio.sleep(0.15)
    assert endpoints.calls["metrics"] == n  # stopped means stopped
