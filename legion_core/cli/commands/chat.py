"""`legion chat`: the REPL, and one-shot answers for scripts."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import click

from legion_core import __version__
from legion_core.types import (
    ChatRequest,
    DoneChunk,
    ErrorChunk,
    Intent,
    Message,
    RouteChunk,
    TextDelta,
    ThinkingDelta,
)

EXIT_WORDS = {"exit", "quit", ":q", "/exit", "/quit"}


def parse_intent(pairs: tuple[str, ...]) -> Intent:
    """`--intent privacy=strict --intent capability=reasoning` (or comma-separated)."""
    fields: dict[str, str] = {}
    for raw in pairs:
        for part in raw.split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            if not sep:
                raise click.BadParameter(f"expected key=value, got {part!r}", param_hint="--intent")
            fields[key.strip()] = value.strip()
    try:
        return Intent.model_validate(fields)
    except Exception as e:  # pydantic ValidationError → one readable line
        raise click.BadParameter(_first_error(e), param_hint="--intent") from None


def _first_error(e: Exception) -> str:
    errs = getattr(e, "errors", None)
    if callable(errs):
        err = errs()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        return f"{loc}: {err.get('msg')}"
    return str(e)


def banner(legion: Any) -> list[str]:
    """The startup banner: version, strategy (or the single provider), providers and warnings."""
    reg = legion.registry
    lines = [f"Legion {__version__}"]
    names = reg.names()
    if len(names) == 1:
        p = reg.get(names[0])
        models = reg.models(names[0])
        model = p.default_model or (models[0].id if models else "?")
        lines.append(f"provider: {p.name} | model: {model} | tier: {p.tier}")
    else:
        lines.append(f"routing: {legion.settings.llm.routing.strategy}")
    shown = []
    for n in names:
        p = reg.get(n)
        label = f"{n} ({p.tier})"
        if reg.reachable.get(n) is False:
            label = f"{n} (unavailable)"
        shown.append(label)
    lines.append("providers: " + (", ".join(shown) if shown else "none"))
    for n in names:
        if reg.reachable.get(n) is False:
            where = reg.get(n).base_url or "its endpoint"
            lines.append(f"WARNING: {n} unreachable at {where} — removed from pool")
    for n, why in reg.skipped.items():
        lines.append(f"note: {n} not enabled ({why})")
    return lines


def footer(resp: Any) -> str:
    tier = "tier-0" if resp.cache_hit else resp.tier
    parts = [f"tier: {tier}", f"latency: {resp.latency_ms:.0f}ms"]
    if resp.usage.total_tokens:
        parts.append(f"tokens: {resp.usage.total_tokens}")
    if resp.cost_usd:
        parts.append(f"cost: ${resp.cost_usd:.6f}")
    if resp.escalated:
        parts.append("escalated")
    return "[" + " | ".join(parts) + "]"


def prefix(route: RouteChunk) -> str:
    if route.cache_hit:
        return "legion [tier-0/cache] > "
    return f"legion [{route.provider}/{route.model}] > "


async def stream_answer(legion: Any, request: ChatRequest, out: Any) -> Any:
    """Print one streamed answer; returns the final ChatResponse (or None if it broke)."""
    started = time.perf_counter()
    response = None
    async for chunk in legion.pipeline.stream(request):
        if isinstance(chunk, RouteChunk):
            out.write(prefix(chunk))
        elif isinstance(chunk, TextDelta):
            out.write(chunk.text)
        elif isinstance(chunk, ThinkingDelta):
            continue
        elif isinstance(chunk, ErrorChunk):
            out.write(f"\n[error: {chunk.message}]")
        elif isinstance(chunk, DoneChunk):
            response = chunk.response
        out.flush()
    out.write("\n")
    if response is not None:
        if not response.latency_ms:
            response.latency_ms = (time.perf_counter() - started) * 1000
        out.write(footer(response) + "\n")
    out.flush()
    return response


def build_request(history: list[Message], opts: dict[str, Any]) -> ChatRequest:
    return ChatRequest(
        messages=list(history),
        system=opts.get("system"),
        model=opts.get("model"),
        tier=opts.get("tier"),
        provider=opts.get("provider"),
        intent=opts.get("intent") or Intent(),
        cache=not opts.get("no_cache", False),
        stream=True,
        caller="cli",
    )


def read_input(prompt: str) -> str:
    """One message: a line, or several when a line ends with a backslash or inside triple quotes."""
    first = input(prompt)
    if first.strip() == '"""':
        lines: list[str] = []
        while True:
            line = input("... ")
            if line.strip() == '"""':
                return "\n".join(lines)
            lines.append(line)
    lines = [first]
    while lines[-1].endswith("\\"):
        lines[-1] = lines[-1][:-1]
        lines.append(input("... "))
    return "\n".join(lines)


def _setup_history(home: Any) -> None:
    try:
        import readline
    except ImportError:  # pragma: no cover - not on every platform
        return
    path = os.path.join(str(home), "history")
    try:
        readline.read_history_file(path)
    except OSError:
        pass
    readline.set_history_length(1000)
    import atexit

    def _save() -> None:
        try:
            readline.write_history_file(path)
        except OSError:
            pass

    atexit.register(_save)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("question", required=False)
    @click.option("--model", help="A concrete model id (or provider/model), or a routing alias.")
    @click.option("--tier", type=click.Choice(["local", "fleet", "openai_compat", "cloud", "frontier"]),
                  help="Force a tier.")
    @click.option("--provider", help="Force a provider (its name in settings).")
    @click.option("--intent", "intent", multiple=True, metavar="KEY=VALUE",
                  help="Routing intent, e.g. privacy=strict, capability=reasoning, cost=minimize.")
    @click.option("--no-cache", is_flag=True, help="Bypass the tier-0 cache for these requests.")
    @click.option("--system", help="A system prompt.")
    @click.option("--json", "as_json", is_flag=True,
                  help="One-shot only: print the full response with its routing decision as JSON.")
    def chat(question: str | None, model: str | None, tier: str | None, provider: str | None,
             intent: tuple[str, ...], no_cache: bool, system: str | None, as_json: bool) -> None:
        """Chat with whichever model Legion routes to (REPL), or answer QUESTION once.

        \b
        Examples:
          legion chat
          legion chat "What day comes after Tuesday?"
          legion chat --intent privacy=strict "Summarise my notes"
          legion chat --json "2+2?" | jq .routing
        In the REPL: `exit`, `quit` or Ctrl-D leave; Ctrl-C stops the current answer;
        end a line with \\ (or type \"\"\" ... \"\"\") for multi-line input.
        """
        from legion_core.cli.session import booted

        opts = {"model": model, "tier": tier, "provider": provider, "intent": parse_intent(intent),
                "no_cache": no_cache, "system": system}
        session = booted()
        try:
            legion = session.legion
            if not legion.registry.names():
                from legion_core.errors import NoProviderAvailable

                raise NoProviderAvailable("no provider is configured or enabled")
            if question is not None:
                _one_shot(session, question, opts, as_json)
                return
            _repl(session, opts)
        finally:
            session.close()


def _one_shot(session: Any, question: str, opts: dict[str, Any], as_json: bool) -> None:
    legion = session.legion
    request = build_request([Message(role="user", content=question)], opts)
    if as_json:
        request = request.model_copy(update={"stream": False})
        resp = session.run(legion.pipeline.chat(request))
        click.echo(resp.model_dump_json(indent=2))
        return
    resp = session.run(stream_answer(legion, request, sys.stdout))
    if resp is None:
        raise SystemExit(1)


def _repl(session: Any, opts: dict[str, Any]) -> None:
    legion = session.legion
    if sys.stdin.isatty():
        # Ctrl-C must stop the answer even when we were started from a non-interactive shell's
        # background job, which starts us with SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    for line in banner(legion):
        click.echo(line)
    click.echo('Type your question. `exit` or Ctrl-D to leave; Ctrl-C stops an answer.')
    _setup_history(legion.home)
    history: list[Message] = []
    while True:
        try:
            text = read_input("you > ")
        except EOFError:
            click.echo("")
            break
        except KeyboardInterrupt:
            click.echo("")
            continue
        if text.strip().lower() in EXIT_WORDS:
            break
        if not text.strip():
            continue
        history.append(Message(role="user", content=text))
        try:
            resp = session.run(stream_answer(legion, build_request(history, opts), sys.stdout))
        except KeyboardInterrupt:
            click.echo("\n[interrupted]")
            history.pop()
            continue
        except Exception as e:  # noqa: BLE001 - one readable line; the session goes on
            from legion_core.log import scrub

            click.echo(f"error: {scrub(str(e))}", err=True)
            history.pop()
            continue
        if resp is not None:
            history.append(Message(role="assistant", content=resp.text))
        else:
            history.pop()
