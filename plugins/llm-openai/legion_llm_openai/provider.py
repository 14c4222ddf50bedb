"""The OpenAI API as a Legion provider: the shared OpenAI wire code plus OpenAI's own rules.

What differs from a generic compatible server: a bearer key is required, `max_completion_tokens`
replaces `max_tokens`, reasoning models (o-series, gpt-5) reject sampling knobs and take
`reasoning_effort`, and the model list is a static catalog (prices, windows) that `list_models`
checks against `GET /v1/models`.
"""

from __future__ import annotations

from typing import Any

from legion_core.errors import ProviderError
from legion_core.providers.openai_wire import OpenAIWireProvider
from legion_core.settings.models import ProviderSettings
from legion_core.types import ChatRequest, ModelInfo
from legion_llm_openai import catalog


class OpenAIProvider(OpenAIWireProvider):
    """Options under `llm.providers.<name>` besides the common ones: `organization`, `project`,
    `reasoning_effort` (default `medium`, used when a request asks for thinking)."""

    kind = "openai"
    default_tier = "frontier"
    default_base_url = "https://api.openai.com/v1"
    credential_keys = ("api_key",)
    needs_credentials = True
    max_tokens_field = "max_completion_tokens"

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        return ProviderSettings(type="openai", api_key="env://OPENAI_API_KEY",
                                default_model=catalog.DEFAULT_MODEL)

    @property
    def default_model(self) -> str | None:
        return self.settings.default_model or catalog.DEFAULT_MODEL

    def headers(self) -> dict[str, str]:
        h = super().headers()
        if org := self.option("organization"):
            h["OpenAI-Organization"] = str(org)
        if project := self.option("project"):
            h["OpenAI-Project"] = str(project)
        return h

    def sampling_allowed(self, model: str) -> bool:
        return not catalog.is_reasoning(model)

    def extra_body(self, request: ChatRequest, model: str) -> dict[str, Any]:
        if request.thinking and catalog.is_reasoning(model):
            return {"reasoning_effort": str(self.option("reasoning_effort", "medium"))}
        return {}

    def static_models(self) -> list[ModelInfo]:
        return catalog.static_models(self.name, self.tier)

    async def list_models(self) -> list[ModelInfo]:
        """The catalog, each entry marked `available` per the account's `GET /v1/models`.

        Never raises: when the live list cannot be fetched, the catalog is returned unchecked.
        """
        models = self.static_models()
        try:
            live = {m["id"] for m in await self.fetch_models()}
        except ProviderError:
            return models
        return [m.model_copy(update={"available": m.id in live}) for m in models]
