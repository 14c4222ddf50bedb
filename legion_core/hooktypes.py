"""Typed records passed to and returned from hooks (so hooks stay small and stable)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from legion_core.types import ChatRequest, ChatResponse, RoutingDecision


@dataclass(frozen=True)
class ProviderSignal:
    """A per-provider routing signal, e.g. GPU load. `penalty` is subtracted from the score."""

    name: str
    penalty: float = 0.0
    #: False removes the provider from the pool for this request (e.g. a saturated GPU).
    healthy: bool = True
    detail: str = ""


@dataclass
class RequestContext:
    """What a guard sees besides the request. `route_preview()` asks the router, without calling
    any model, where the request would go now (budget guards price that candidate)."""

    request_id: str
    caller: str | None = None
    api_key_id: str | None = None
    dialect: str = "native"
    route_preview: Callable[[ChatRequest], RoutingDecision] | None = None
    state: Any = None  # the kernel's SharedState, for guards that keep counters
    extras: dict[str, Any] = field(default_factory=dict)


#: A quality check returns a list of failure names (empty list = passed).
QualityCheck = Callable[["ChatRequest", "ChatResponse"], list[str]]


class Extension:
    """A unit of application behaviour that plugs into Legion (a runner, a bot, an alerter).

    Subclass it and register it via `legion_register_extensions`. When `llm_required` is True
    and no provider is ready at boot, the kernel skips it with one log line.
    """

    name: ClassVar[str] = "extension"
    llm_required: ClassVar[bool] = False

    async def start(self, legion: Any) -> None:  # legion: legion_core.lifecycle.Legion
        """Called once the router and pipeline are up."""

    async def stop(self) -> None:
        """Called at shutdown, before the pipeline is torn down."""


SecretResolver = Callable[[str], "str | None | Awaitable[str | None]"]
