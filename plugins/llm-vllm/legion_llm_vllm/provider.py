"""vLLM (and any OpenAI-compatible server) as a Legion provider.

The wire code is the kernel's shared `OpenAIWireProvider`; this adds vLLM's switches: thinking
through `chat_template_kwargs.enable_thinking`, discovery from `/v1/models` (`max_model_len`),
`/health` (falling back to `/v1/models` on servers without one, e.g. LM Studio or llama.cpp),
and the Prometheus gauges of `/metrics` for load-aware routing.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from legion_core.errors import ProviderError
from legion_core.providers.http import transport_error
from legion_core.providers.openai_wire import OpenAIWireProvider
from legion_core.types import ChatRequest, Health, ModelInfo

DEFAULT_CAPABILITIES = ("streaming", "tools", "json")
DEFAULT_CONTEXT_WINDOW = 8192
_EMBEDDING_HINTS = ("embed", "bge-", "/bge", "e5-", "gte-", "minilm", "nomic-embed")
_METRIC_LINE = re.compile(r"^(vllm:[A-Za-z_:]+)(\{[^}]*\})?\s+([-+0-9.eEinfaN]+)$")


class VLLMProvider(OpenAIWireProvider):
    """Options under `llm.providers.<name>` besides the common ones:

    - `enable_thinking` (default true): send `chat_template_kwargs.enable_thinking` when a request
      asks for thinking;
    - `reasoning` (default false): the server runs a reasoning parser, so models get `thinking`;
    - `capabilities`: the capability list published for discovered models (default tools, json,
      streaming);
    - `context_window`: the window for servers whose `/v1/models` has no `max_model_len`;
    - `health_path` (default `/health`, relative to the server root).
    """

    kind = "vllm"
    default_tier = "fleet"
    default_base_url = "http://localhost:8000/v1"
    credential_keys = ("api_key",)
    needs_credentials = False
    health_path = "/health"

    # ---------------------------------------------------------------- request shaping
    def extra_body(self, request: ChatRequest, model: str) -> dict[str, Any]:
        if request.thinking and self.option("enable_thinking", True):
            return {"chat_template_kwargs": {"enable_thinking": True}}
        return {}

    # ---------------------------------------------------------------- discovery
    def capabilities_for(self, model_id: str) -> tuple[set[str], bool]:
        if any(h in model_id.lower() for h in _EMBEDDING_HINTS):
            return {"embeddings"}, True
        caps = set(self.option("capabilities", DEFAULT_CAPABILITIES))
        caps.add("streaming")
        if self.option("reasoning", False):
            caps.add("thinking")
        return caps, False

    async def discover(self) -> list[ModelInfo]:
        """The models the server really serves. Raises a typed `ProviderError` when it can't tell."""
        out = []
        for entry in await self.fetch_models():
            caps, embedding = self.capabilities_for(str(entry["id"]))
            window = entry.get("max_model_len") or self.option("context_window", DEFAULT_CONTEXT_WINDOW)
            out.append(ModelInfo(id=str(entry["id"]), provider=self.name, tier=self.tier,
                                 context_window=int(window), capabilities=caps, embedding=embedding,
                                 available=True, loaded=True))
        return out

    async def discover_or_empty(self) -> list[ModelInfo]:
        """`discover()`, with an unreachable or failing server reported as no models."""
        try:
            return await self.discover()
        except ProviderError:
            return []

    def static_models(self) -> list[ModelInfo]:
        """Nothing is known without asking the server, except a configured default model."""
        if not self.default_model:
            return []
        caps, embedding = self.capabilities_for(self.default_model)
        return [ModelInfo(id=self.default_model, provider=self.name, tier=self.tier, capabilities=caps,
                          context_window=int(self.option("context_window", DEFAULT_CONTEXT_WINDOW)),
                          embedding=embedding)]

    async def list_models(self) -> list[ModelInfo]:
        return await self.discover()

    # ---------------------------------------------------------------- health and load
    async def health(self) -> Health:
        path = str(self.option("health_path", self.health_path))
        t0 = time.perf_counter()
        try:
            resp = await self.client().get(self.server_root + path)
        except httpx.HTTPError as e:
            return Health(ok=False, detail=transport_error(e, self.name).message)
        if resp.status_code == 404:  # LM Studio, llama.cpp's Python server: no /health
            try:
                await self.fetch_models()
            except ProviderError as e:
                return Health(ok=False, detail=e.message)
            return Health(ok=True, latency_ms=(time.perf_counter() - t0) * 1000,
                          detail="no /health; /v1/models answered")
        if resp.status_code >= 400:
            return Health(ok=False, detail=f"{path} answered HTTP {resp.status_code}")
        return Health(ok=True, latency_ms=(time.perf_counter() - t0) * 1000)

    async def metrics(self) -> dict[str, float]:
        """vLLM's Prometheus gauges (`vllm:num_requests_running`, `vllm:num_requests_waiting`,
        `vllm:gpu_cache_usage_perc`/`kv_cache_usage_perc`...), summed over label sets."""
        try:
            resp = await self.client().get(self.server_root + "/metrics")
        except httpx.HTTPError as e:
            raise transport_error(e, self.name) from None
        if resp.status_code >= 400:
            from legion_core.providers.openai_wire import error_from_response

            raise error_from_response(resp, self.name)
        return parse_prometheus(resp.text)


def parse_prometheus(text: str) -> dict[str, float]:
    """`vllm:*` samples from Prometheus text exposition, summed across labels."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _METRIC_LINE.match(line.strip())
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)] = out.get(m.group(1), 0.0) + value
    return out
