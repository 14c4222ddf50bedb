"""Routing visibly shifts with GPU load, through a real booted Legion (real router and pipeline):
two fleet vLLM instances whose `/metrics` are served on loopback, and a cloud fallback.

idle/idle   -> gpu-a (first in order)
busy/idle   -> gpu-b (gpu-a carries a penalty)
full/full   -> both unhealthy: the request escalates to the cloud tier
"""

from __future__ import annotations

from pathlib import Path

import pytest
from legion_signal_gpu.plugin import GpuPlugin
from test_gpu_signal import GpuEndpoints

from legion_core.hookspecs import hookimpl
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.providers.base import Provider
from legion_core.types import ChatResponse, DoneChunk, TextBlock, Usage, text_request

FIXTURES = Path(__file__).parent / "fixtures"
IDLE = (FIXTURES / "vllm_metrics_idle_v1.txt").read_text()
BUSY = (FIXTURES / "vllm_metrics_busy.txt").read_text().replace("} 2.0", "} 0.0")  # 14/16 running, no queue
FULL = (FIXTURES / "vllm_metrics_busy.txt").read_text()  # 2 waiting: saturated


class VllmLike(Provider):
    """Answers with its own name; `kind` makes signal-gpu watch its `/metrics`."""

    kind = "vllm"
    default_tier = "fleet"

    async def chat(self, request, model):
        return ChatResponse(model=model, content=[TextBlock(text=self.name)], usage=Usage(input_tokens=1,
                                                                                             output_tokens=1))

    async def stream(self, request, model):
        yield DoneChunk()


class Cloudish(VllmLike):
    kind = "cloudish"
    default_tier = "cloud"


class Providers:
    @hookimpl
    def legion_register_providers(self, register):
        register(VllmLike)
        register(Cloudish)


@pytest.fixture
def two_gpus():
    with GpuEndpoints() as a, GpuEndpoints() as b:
        yield a, b


async def test_routing_shifts_with_gpu_load(tmp_path, two_gpus):
    a, b = two_gpus
    caps = {"capabilities": ["streaming", "tools"], "context_window": 32000}
    providers = {
        "gpu-a": {"type": "vllm", "base_url": a.url + "/v1", "default_model": "qwen", "models": {"qwen": caps}},
        "gpu-b": {"type": "vllm", "base_url": b.url + "/v1", "default_model": "qwen", "models": {"qwen": caps}},
        "cloud": {"type": "cloudish", "default_model": "big",
                  "models": {"big": {**caps, "input_price": 3.0, "output_price": 15.0}}},
    }
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(Providers(), name="providers")
    signal = GpuPlugin(nvml_module=None)
    pm.register(signal, name="signal-gpu")
    lg = Legion(home=tmp_path, plugins=pm, load_entry_points=False,
                settings={"llm": {"providers": providers, "discovery": {"enabled": False},
                                  "cache": {"enabled": False}},
                          "gpu": {"interval_seconds": 60, "nvml": False}})
    await lg.start()
    try:
        poller = signal.poller
        assert poller.running and {t.provider for t in poller.targets} == {"gpu-a", "gpu-b"}

        async def answered_by(ma, mb):
            a.metrics_text, b.metrics_text = ma, mb
            await poller.poll_once()  # what the background task does every interval
            r = await lg.pipeline.chat(text_request("What day comes after Tuesday?", cache=False))
            return r.text, r.routing

        who, decision = await answered_by(IDLE, IDLE)
        assert who == "gpu-a"
        who, decision = await answered_by(BUSY, IDLE)
        assert who == "gpu-b"
        a_score = next(c for c in decision.candidates if c.provider == "gpu-a")
        b_score = next(c for c in decision.candidates if c.provider == "gpu-b")
        assert a_score.dropped is None and a_score.score < b_score.score
        who, decision = await answered_by(FULL, FULL)
        assert who == "cloud" and decision.tier == "cloud"
        assert all(c.dropped for c in decision.candidates if c.provider.startswith("gpu-"))
        who, _ = await answered_by(IDLE, FULL)
        assert who == "gpu-a"
    finally:
        await lg.shutdown()
    assert not signal.poller.running


async def test_with_the_real_vllm_provider_and_the_vllm_fake(tmp_path, legion_fake_factory):
    """The llm-vllm plugin (when installed) against two OpenAI-compatible fakes in vLLM flavour,
    whose `/metrics` gauges the test sets: the busy instance loses the request."""
    pytest.importorskip("legion_llm_vllm")
    import legion_llm_vllm.plugin as vllm_plugin

    from legion_core.testing.fakes.openai import FakeOpenAI

    a = legion_fake_factory(FakeOpenAI, flavor="vllm", models=["qwen"], reply_text="from a")
    b = legion_fake_factory(FakeOpenAI, flavor="vllm", models=["qwen"], reply_text="from b")
    providers = {name: {"type": "vllm", "base_url": f.url + "/v1", "api_key": "sk-test-fake",
                        "default_model": "qwen"} for name, f in (("gpu-a", a), ("gpu-b", b))}
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(vllm_plugin, name="llm-vllm")
    signal = GpuPlugin()
    pm.register(signal, name="signal-gpu")
    lg = Legion(home=tmp_path, plugins=pm, load_entry_points=False,
                settings={"llm": {"providers": providers, "discovery": {"enabled": False},
                                  "cache": {"enabled": False}},
                          "gpu": {"interval_seconds": 60, "nvml": False}})
    await lg.start()
    try:
        a.metrics.update(num_requests_running=15.0, gpu_cache_usage_perc=0.9)
        await signal.poller.poll_once()
        r = await lg.pipeline.chat(text_request("What day comes after Tuesday?", cache=False))
        assert r.provider == "gpu-b" and r.text == "from b"
        a.metrics.update(num_requests_running=0.0, gpu_cache_usage_perc=0.1)
        b.metrics.update(num_requests_waiting=3.0)
        await signal.poller.poll_once()
        r = await lg.pipeline.chat(text_request("What day comes after Tuesday?", cache=False))
        assert r.provider == "gpu-a" and r.text == "from a"
        assert a.calls["metrics"] == b.calls["metrics"] == 2
    finally:
        await lg.shutdown()
