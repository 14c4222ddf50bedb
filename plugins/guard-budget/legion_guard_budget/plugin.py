"""The hook implementations. `plugin` (an instance) is what the `legion` entry point names;
tests build their own `BudgetPlugin(guard=...)` and register it on a fresh manager."""

from __future__ import annotations

from typing import Any

from legion_core.errors import SettingsError
from legion_core.hookspecs import hookimpl
from legion_core.types import ChatRequest, ChatResponse, ModelInfo
from legion_guard_budget.guard import BudgetGuard, Catalog
from legion_guard_budget.settings import BudgetSettings


def load_settings(raw: dict[str, Any]) -> BudgetSettings:
    """Validate the `budget` section; an error names the key and what was expected."""
    from pydantic import ValidationError

    try:
        return BudgetSettings.model_validate(raw or {})
    except ValidationError as e:
        err = e.errors()[0]
        key = "budget." + ".".join(str(p) for p in err["loc"])
        raise SettingsError(err["msg"], key=key, got=type(err.get("input")).__name__) from None


def catalog_for(legion: Any) -> Catalog:
    """Prices from the router's catalog, falling back to `llm.pricing.<model>`."""

    def lookup(provider: str, model: str) -> ModelInfo | None:
        info = None
        if provider in legion.registry:
            info = next((m for m in legion.registry.models(provider) if m.id == model), None)
        if info is not None and (info.input_price or info.output_price):
            return info
        pricing = legion.settings.llm.pricing
        price = pricing.get(f"{provider}/{model}") or pricing.get(model)
        if price is not None:
            base = info or ModelInfo(id=model, provider=provider)
            return base.model_copy(update={"input_price": price.input, "output_price": price.output})
        return info

    return lookup


class BudgetPlugin:
    def __init__(self, guard: BudgetGuard | None = None) -> None:
        self.guard = guard

    @hookimpl
    def legion_settings_schema(self, register: Any) -> None:
        register("budget", BudgetSettings)

    @hookimpl
    def legion_settings_defaults(self) -> dict[str, Any]:
        return {"budget": {"on_exceed": "downgrade", "warning_threshold": 0.8, "timezone": "UTC"}}

    @hookimpl
    def legion_startup(self, legion: Any) -> None:
        settings = load_settings(legion.settings.section("budget"))
        from legion_guard_budget.metrics import GaugeRegistry, publish

        # One registry per running kernel: /metrics shows this instance's figures only.
        self.guard = BudgetGuard(settings, state=legion.state, catalog=catalog_for(legion),
                                 metrics=GaugeRegistry())

        publish(self.guard.metrics)

    @hookimpl
    def legion_shutdown(self, legion: Any) -> None:
        if self.guard is not None:
            self.guard.release_all()

    @hookimpl(trylast=True)  # price the request after other guards have rewritten it
    def legion_before_chat(self, request: ChatRequest, context: Any) -> ChatRequest | None:
        if self.guard is None:
            return None
        return self.guard.before_chat(request, context)

    @hookimpl
    def legion_after_chat(self, request: ChatRequest, response: ChatResponse,
                          context: Any) -> ChatResponse | None:
        if self.guard is not None:
            self.guard.after_chat(request, response, context)
        return None

    @hookimpl
    def legion_register_commands(self, cli: Any) -> None:
        from legion_guard_budget.cli import budget

        if "budget" not in getattr(cli, "commands", {}):
            cli.add_command(budget)


plugin = BudgetPlugin()
