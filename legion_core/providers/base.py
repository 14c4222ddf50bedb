"""The provider contract. A provider plugin subclasses `Provider` and registers the class
through the `legion_register_providers` hook; the kernel instantiates one object per
configured instance (`providers.<name>` in settings).

A provider owns its wire format and nothing else: no routing, no retries across
providers, no caching. It raises typed `legion_core.errors.ProviderError`s.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from legion_core.settings.models import ProviderSettings
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    EmbedResponse,
    Health,
    ModelInfo,
    StreamChunk,
)


class Provider(abc.ABC):
    #: The `type` this class serves in settings, e.g. "ollama".
    kind: ClassVar[str]
    default_tier: ClassVar[str] = "cloud"
    default_base_url: ClassVar[str | None] = None
    #: Settings keys that hold credentials; without one resolved, the provider is not auto-enabled.
    credential_keys: ClassVar[tuple[str, ...]] = ()
    #: True when the provider needs no credential at all (local servers, embedded models).
    needs_credentials: ClassVar[bool] = False

    def __init__(self, name: str, settings: ProviderSettings) -> None:
        self.name = name
        self.settings = settings
        self.tier: str = settings.tier or self.default_tier
        self.base_url: str | None = (settings.base_url or self.default_base_url or None)
        if self.base_url:
            self.base_url = self.base_url.rstrip("/")

    @classmethod
    def auto_settings(cls) -> ProviderSettings | None:
        """Settings to use when nothing is configured at all (auto-detection), or None.

        E.g. a cloud provider returns `api_key="env://OPENAI_API_KEY"`; it then counts only
        if that reference resolves. The embedded local provider always returns settings.
        """
        return None

    # -- the operations -------------------------------------------------------------
    @abc.abstractmethod
    async def chat(self, request: ChatRequest, model: str) -> ChatResponse:
        """One complete answer. `model` is the concrete upstream model id."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[StreamChunk]:
        """Typed chunks: text/thinking/tool-call deltas, usage, then `DoneChunk`.

        Raise a `ProviderError` before the first chunk to let the router fail over;
        after it, raise `StreamInterrupted`.
        """

    async def embed(self, texts: list[str], model: str) -> EmbedResponse:
        from legion_core.errors import ProviderBadRequest

        raise ProviderBadRequest(f"provider {self.name} does not do embeddings", provider=self.name)

    def static_models(self) -> list[ModelInfo]:
        """The built-in catalog (context window, capabilities, prices) — no network."""
        return []

    async def list_models(self) -> list[ModelInfo]:
        """The live list (discovery). Defaults to the static catalog."""
        return self.static_models()

    async def health(self) -> Health:
        return Health(ok=True, detail="no health check")

    async def startup(self) -> None:  # noqa: B027 - optional, most providers need nothing
        """Open pools; called once at boot. Must not block on the network."""

    async def aclose(self) -> None:  # noqa: B027 - optional, most providers need nothing
        """Close pools; called at shutdown."""

    # -- helpers --------------------------------------------------------------------
    @property
    def default_model(self) -> str | None:
        return self.settings.default_model

    def option(self, key: str, default: Any = None) -> Any:
        """A provider-specific setting (extra keys under `providers.<name>`), resolved."""
        return self.settings.extra_options().get(key, default)

    def number_option(self, key: str, default: float | None, *, integer: bool = False,
                      minimum: float = 0) -> Any:
        """A numeric provider option, checked at configuration: a bad value names its key."""
        from legion_core.errors import SettingsError

        raw = self.option(key, default)
        if raw is None:
            return None
        try:
            value = int(raw) if integer else float(raw)
            if isinstance(raw, bool) or value < minimum:
                raise ValueError
        except (TypeError, ValueError):
            kind = "an integer" if integer else "a number"
            raise SettingsError(f"must be {kind} >= {minimum:g}", key=f"llm.providers.{self.name}.{key}",
                                got=repr(raw), expected=f"{kind} >= {minimum:g}") from None
        return value

    def describe(self) -> dict[str, Any]:
        """Safe to show in HTTP and CLI output: no credentials."""
        return {"name": self.name, "type": self.kind, "tier": self.tier, "base_url": self.base_url,
                "default_model": self.default_model}
