"""Configured provider instances and what the router knows about their models.

Built once at boot from settings and the classes plugins registered. The catalog merges,
per provider: the class's static models, the settings' `models` overrides, and what
discovery last reported (available, loaded, context window, memory).
"""

from __future__ import annotations

from typing import Any

from legion_core.log import get_logger
from legion_core.providers.base import Provider
from legion_core.settings.models import LLMSettings, ProviderSettings
from legion_core.types import ModelInfo

log = get_logger("legion.registry")

#: Auto-detection order when no provider is configured (issue: kernel/router).
AUTO_PRIORITY: tuple[str, ...] = (
    "bedrock", "anthropic", "openai", "gemini", "azure", "ollama", "vllm", "llamacpp",
)


class ProviderRegistry:
    def __init__(self) -> None:
        self.classes: dict[str, type[Provider]] = {}
        self.providers: dict[str, Provider] = {}
        #: Providers configured but not enabled, with the reason (never a secret value).
        self.skipped: dict[str, str] = {}
        self.discovered: dict[str, list[ModelInfo]] = {}
        #: Last known reachability: True, False (unreachable), None (not checked yet).
        self.reachable: dict[str, bool | None] = {}
        self.unreachable_detail: dict[str, str] = {}
        self.default_provider: str | None = None
        self._catalog_cache: dict[str, list[ModelInfo]] = {}
        #: Moves on whenever what `models()` returns may change (a provider added or removed, a
        #: discovery result), so the router can check its catalog in O(1) per decision.
        self.version = 0

    # ------------------------------------------------------------ classes
    def register_class(self, cls: type[Provider]) -> None:
        kind = getattr(cls, "kind", None)
        if not kind:
            raise TypeError(f"{cls.__name__} has no `kind`")
        self.classes[kind] = cls

    # ------------------------------------------------------------ instances
    def add(self, provider: Provider) -> None:
        self.providers[provider.name] = provider
        self._catalog_cache.pop(provider.name, None)
        self.version += 1

    def remove(self, name: str) -> None:
        self.providers.pop(name, None)
        self._catalog_cache.pop(name, None)
        self.version += 1

    def get(self, name: str) -> Provider:
        return self.providers[name]

    def __contains__(self, name: object) -> bool:
        return name in self.providers

    def names(self) -> list[str]:
        return list(self.providers)

    def kind_of(self, settings: ProviderSettings, name: str) -> str:
        return settings.type or name

    def build(self, llm: LLMSettings, provider_settings: dict[str, ProviderSettings],
              unresolved: dict[str, list[str]]) -> None:
        """Instantiate enabled providers.

        :param provider_settings: settings with credentials already resolved.
        :param unresolved: provider name -> references that did not resolve (for the warning).
        """
        for name, ps in provider_settings.items():
            kind = self.kind_of(ps, name)
            cls = self.classes.get(kind)
            if cls is None:
                self.skipped[name] = f"no plugin provides type {kind!r}"
                log.warning("provider has no plugin", provider=name, type=kind)
                continue
            if ps.enabled is False:
                self.skipped[name] = "disabled in settings"
                continue
            missing = unresolved.get(name) or []
            if cls.needs_credentials and missing:
                # secrets.resolve_credentials already warned once, naming provider and reference.
                self.skipped[name] = "credentials did not resolve: " + ", ".join(missing)
                continue
            try:
                self.add(cls(name, ps))
            except Exception as e:  # noqa: BLE001 - a bad provider must not stop boot
                self.skipped[name] = f"failed to configure: {type(e).__name__}: {e}"
                log.warning("provider failed to configure", provider=name, error=str(e))
        self.default_provider = self._pick_default(llm.default_provider)

    def _pick_default(self, configured: str | None) -> str | None:
        if configured and configured in self.providers:
            return configured
        by_kind = {p.kind: n for n, p in reversed(list(self.providers.items()))}
        for kind in AUTO_PRIORITY:
            if kind in by_kind:
                return by_kind[kind]
        return next(iter(self.providers), None)

    # ------------------------------------------------------------ catalog
    def models(self, name: str) -> list[ModelInfo]:
        """What the router may pick on this provider (cached; invalidated by discovery)."""
        cached = self._catalog_cache.get(name)
        if cached is not None:
            return cached
        p = self.providers[name]
        merged: dict[str, ModelInfo] = {}
        for m in p.static_models():
            merged[m.id] = m.model_copy(update={"provider": name, "tier": p.tier})
        for mid, override in (p.settings.models or {}).items():
            base = merged.get(mid) or ModelInfo(id=mid, provider=name, tier=p.tier)
            merged[mid] = base.model_copy(update=_model_override(override))
        for m in self.discovered.get(name, []):
            found = merged.get(m.id)
            upd = {k: v for k, v in m.model_dump(exclude_unset=True).items() if k != "id"}
            upd.update({"provider": name, "tier": p.tier})
            merged[m.id] = found.model_copy(update=upd) if found else m.model_copy(update=upd)
        dm = p.default_model
        if dm and dm not in merged:
            merged[dm] = ModelInfo(id=dm, provider=name, tier=p.tier)
        out = list(merged.values())
        if dm:  # the default model first: it is the one picked when nothing else decides
            out.sort(key=lambda m: m.id != dm)
        self._catalog_cache[name] = out
        return out

    def set_discovered(self, name: str, models: list[ModelInfo]) -> None:
        self.discovered[name] = models
        self._catalog_cache.pop(name, None)
        self.version += 1

    def set_reachable(self, name: str, ok: bool, detail: str = "") -> None:
        self.reachable[name] = ok
        if ok:
            self.unreachable_detail.pop(name, None)
        else:
            self.unreachable_detail[name] = detail

    def catalog(self) -> list[ModelInfo]:
        return [m for n in self.providers for m in self.models(n)]

    def find_model(self, model_id: str) -> list[tuple[str, ModelInfo]]:
        """Every provider that serves `model_id` (also as `provider/model`)."""
        if "/" in model_id:
            prov, _, mid = model_id.partition("/")
            if prov in self.providers:
                return [(prov, m) for m in self.models(prov) if m.id == mid] or [
                    (prov, ModelInfo(id=mid, provider=prov, tier=self.providers[prov].tier))]
        return [(n, m) for n in self.providers for m in self.models(n) if m.id == model_id]


def _model_override(raw: dict[str, Any]) -> dict[str, Any]:
    upd = dict(raw)
    if "capabilities" in upd:
        upd["capabilities"] = set(upd["capabilities"])
    return upd
