"""Every hook Legion offers, in one place.

Plugins implement these with `@legion_core.hookimpl`. Each hook is documented in
`docs/hooks.md` under a heading with its exact name, and tested; meta-tests enforce both.

Conventions (from pluggy and simonw/llm):
- registration hooks take a `register` callback rather than returning values;
- hooks called on the request path are sync and must be cheap (no I/O): keep state
  fresh in the background and read it here;
- `firstresult` where the first answer wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from pydantic import BaseModel

    from legion_core.hooktypes import Extension, ProviderSignal, RequestContext
    from legion_core.lifecycle import Legion
    from legion_core.providers.base import Provider
    from legion_core.types import ChatRequest, ChatResponse, ToolCall, ToolResult, ToolSpec

PROJECT = "legion"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ============================================================ 1. provider
@hookspec
def legion_register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register provider classes.

    :param register: call with a `legion_core.providers.Provider` subclass; its `kind`
        is the `type` settings use (`llm.providers.<name>.type`, default the map key).
    :returns: nothing.

    Example::

        @hookimpl
        def legion_register_providers(register):
            register(OllamaProvider)
    """


# ============================================================ 2. routing signals
@hookspec
def legion_request_signals(request: ChatRequest) -> dict[str, Any] | None:
    """Per-request routing signals, e.g. ``{"complexity": 0.7}``.

    Results are merged; for a key reported by several plugins the first wins, so a
    ``tryfirst`` plugin replaces the built-in complexity estimator. Must be cheap (no I/O).

    A value may be lazy, a zero-argument callable: the router calls ``complexity`` only when
    it can change the decision (a request naming a model that lives on one tier, with no rule
    on complexity, is routed without it), and other signals when it records them. The
    built-in estimator is lazy.

    :param request: the normalized request.
    :returns: a mapping of signal name to value in [0, 1] (or a callable returning one), or None.

    Example::

        @hookimpl(tryfirst=True)
        def legion_request_signals(request):
            return {"complexity": my_classifier(request.last_user_text())}
    """


@hookspec
def legion_provider_signals(provider: Provider) -> ProviderSignal | list[ProviderSignal] | None:
    """Per-provider signals (GPU load, spend, queue depth) that adjust a candidate's score.

    Called at routing time for every candidate provider: return cached values polled in the
    background, never do I/O here.

    :param provider: the configured provider instance (`.name`, `.kind`, `.tier`, `.base_url`).
    :returns: a `ProviderSignal` (or a list), or None for "no signal".

    Example::

        @hookimpl
        def legion_provider_signals(provider):
            load = LOADS.get(provider.name)
            return ProviderSignal("gpu", penalty=5.0 * load) if load is not None else None
    """


# ============================================================ 3. guards
@hookspec
def legion_before_chat(request: ChatRequest, context: RequestContext) -> ChatRequest | None:
    """Inspect, rewrite or refuse a request before routing.

    Called in order (``tryfirst``/``trylast`` to place yourself); each guard sees the request
    the previous one returned. Raise `legion_core.errors.RequestRefused` to refuse.
    Skipped for callers with ``profile="system"``.

    :param request: the request so far.
    :param context: request id, caller, `route_preview()` and the shared state.
    :returns: a replacement request, or None to keep it as is.

    Example::

        @hookimpl
        def legion_before_chat(request, context):
            if "password" in request.last_user_text():
                return request.model_copy(update={"intent": request.intent.model_copy(
                    update={"privacy": "strict"})})
    """


@hookspec
def legion_after_chat(request: ChatRequest, response: ChatResponse,
                      context: RequestContext) -> ChatResponse | None:
    """Inspect or rewrite a response after the provider answered (also for cache hits).

    :param request: the request as routed.
    :param response: the response so far (routing decision, usage and cost filled in).
    :param context: as for `legion_before_chat`.
    :returns: a replacement response, or None to keep it.

    Example::

        @hookimpl
        def legion_after_chat(request, response, context):
            SPEND[context.caller] += response.cost_usd
    """


# ============================================================ 4. tools
@hookspec
def legion_register_tools(register: Callable[[ToolSpec], None]) -> None:
    """Offer tools that models may call (executed through `legion_dispatch_tool`).

    :param register: call with a `legion_core.types.ToolSpec`.

    Example::

        @hookimpl
        def legion_register_tools(register):
            register(ToolSpec(name="get_time", description="Current UTC time", side_effects=False))
    """


@hookspec(firstresult=True)
def legion_dispatch_tool(call: ToolCall, context: RequestContext) -> ToolResult | None:
    """Execute a tool call a model returned. The first non-None result wins.

    Register the tools you execute (`legion_register_tools`): the pipeline checks a round of
    calls before running any, and runs none of a round that mixes registered tools with others.

    :param call: the tool call (id, name, arguments).
    :param context: the request's context.
    :returns: a `ToolResult`, or None when this plugin does not own the tool.

    Example::

        @hookimpl
        def legion_dispatch_tool(call, context):
            if call.name == "get_time":
                return ToolResult(tool_use_id=call.id, content=utcnow().isoformat())
    """


# ============================================================ 5. discovery
@hookspec
def legion_discover_models(provider: Provider) -> Any:
    """Report which models a provider really has (pulled, loaded, context window, memory).

    Runs in the background on an interval, never on a request. May be ``async``.

    :param provider: a configured provider instance.
    :returns: a list of `ModelInfo` (``available``/``loaded``/``memory_bytes`` filled in) for
        providers this plugin knows, or None.

    Example::

        @hookimpl
        async def legion_discover_models(provider):
            if provider.kind == "ollama":
                return await provider.discover()
    """


# ============================================================ lifecycle
@hookspec
def legion_startup(legion: Legion) -> None:
    """Called once when boot is complete (providers, router and pipeline up). May be ``async``.

    :param legion: the running kernel (settings, registry, state, pipeline).

    Example::

        @hookimpl
        async def legion_startup(legion):
            POLLER.start(legion.settings)
    """


@hookspec
def legion_shutdown(legion: Legion) -> None:
    """Called once at shutdown, before providers are closed. May be ``async``.

    :param legion: the kernel being stopped.

    Example::

        @hookimpl
        async def legion_shutdown(legion):
            await POLLER.stop()
    """


# ============================================================ settings and secrets
@hookspec
def legion_settings_defaults() -> dict[str, Any] | None:
    """Default settings, deep-merged underneath the user's files.

    :returns: a partial settings document.

    Example::

        @hookimpl
        def legion_settings_defaults():
            return {"budget": {"daily_usd": 10.0, "on_exceed": "downgrade"}}
    """


@hookspec
def legion_settings_schema(register: Callable[[str, type[BaseModel]], None]) -> None:
    """Register a pydantic model that validates a top-level settings section.

    :param register: call with ``(section_name, model_class)``.

    Example::

        @hookimpl
        def legion_settings_schema(register):
            register("budget", BudgetSettings)
    """


@hookspec
def legion_secret_schemes(register: Callable[[str, Callable[[str], str | None]], None]) -> None:
    """Add a secret reference scheme (``env`` and ``vault`` are built in).

    :param register: call with ``(scheme, resolve)``; ``resolve(rest_of_reference)`` returns the
        value, or None when it is not set. Raise `SecretError` on a hard failure.

    Example::

        @hookimpl
        def legion_secret_schemes(register):
            register("file", lambda path: Path(path).read_text().strip())
    """


# ============================================================ CLI
@hookspec
def legion_register_commands(cli: click.Group) -> None:
    """Add commands to the ``legion`` CLI.

    :param cli: the root click group.

    Example::

        @hookimpl
        def legion_register_commands(cli):
            @cli.command()
            def budget():
                "Show today's spend."
    """


# ============================================================ extensions
@hookspec
def legion_register_extensions(register: Callable[[Extension], None]) -> None:
    """Register extensions (application behaviour built on Legion).

    :param register: call with an `legion_core.hooktypes.Extension` instance. Extensions with
        ``llm_required = True`` are skipped, with one log line, when no provider is ready.

    Example::

        @hookimpl
        def legion_register_extensions(register):
            register(SmartAlerts())
    """


# ============================================================ quality checks
@hookspec
def legion_quality_checks(register: Callable[[str, Callable[..., list[str]]], None]) -> None:
    """Register named response quality checks usable by escalation (``routing.escalation.checks``).

    :param register: call with ``(name, check)``; ``check(request, response)`` returns a list
        of failure descriptions (empty when the response passes).

    Example::

        @hookimpl
        def legion_quality_checks(register):
            register("no_apology", lambda req, resp: ["apology"] if "sorry" in resp.text else [])
    """
