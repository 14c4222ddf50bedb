"""`legion route --explain`: the routing decision, with no model call."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from legion_core.cli.commands.chat import parse_intent

if TYPE_CHECKING:
    from legion_core.types import ChatRequest


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("prompt")
    @click.option("--explain", is_flag=True, default=True, help="Show every candidate (default).")
    @click.option("--json", "as_json", is_flag=True, help="The decision as JSON, with complexity.")
    @click.option("--model", help="Model, provider/model, or alias.")
    @click.option("--tier", help="Force a tier.")
    @click.option("--provider", help="Force a provider.")
    @click.option("--intent", "intent", multiple=True, metavar="KEY=VALUE", help="Routing intent.")
    @click.option("--probe/--no-probe", default=False,
                  help="Health-check providers first (no model is called either way).")
    def route(prompt: str, explain: bool, as_json: bool, model: str | None, tier: str | None,
              provider: str | None, intent: tuple[str, ...], probe: bool) -> None:
        """Explain where PROMPT would be routed: every candidate, its score, why it was dropped.

        \b
        Examples:
          legion route --explain "What day comes after Tuesday?"
          legion route --json "Compare three sorting algorithms" | jq .complexity
        """
        from legion_core.cli.session import booted
        from legion_core.types import ChatRequest, Message

        req = ChatRequest(messages=[Message(role="user", content=prompt)], model=model, tier=tier,
                          provider=provider, intent=parse_intent(intent))
        with booted(probe=probe) as s:
            decision = s.legion.router.explain(req)
        if as_json:
            click.echo(decision.model_dump_json(indent=2))
            return
        click.echo(f"complexity: {decision.complexity if decision.complexity is not None else '-'}"
                   f"   estimated tokens: {decision.estimated_tokens}   strategy: {decision.strategy}")
        if (why := _complexity_parts(req, decision.complexity)) is not None:
            click.echo(f"complexity from: {why}")
        click.echo(f"{'':2}{'PROVIDER':<14} {'MODEL':<36} {'TIER':<13} {'SCORE':>8}  RULE / DROPPED")
        for c in decision.candidates:
            mark = "->" if (c.provider == decision.provider and c.model == decision.model) else "  "
            tail = f"dropped: {c.dropped}" if c.dropped else (c.rule or "")
            click.echo(f"{mark}{c.provider:<14} {c.model:<36} {c.tier:<13} {c.score:>8.2f}  {tail}")
        if decision.provider:
            click.echo(f"decision: {decision.provider}/{decision.model} (tier {decision.tier})"
                       f"{' by rule ' + decision.rule if decision.rule else ''} — {decision.reason}")
        else:
            click.echo(f"decision: none — {decision.reason}")


def _complexity_parts(req: ChatRequest, complexity: float | None) -> str | None:
    """The built-in estimate's weighted features, largest contribution first ("analysis 0.86
    (+0.95), ..."); None when the score is not the built-in one (a signal plugin gave it)."""
    from legion_core.routing.complexity import WEIGHTS, estimate_complexity, features
    from legion_core.routing.tokens import user_text

    text = user_text(req)
    if complexity is None or not text or abs(estimate_complexity(text) - complexity) > 1e-4:
        return None
    parts = sorted(((WEIGHTS[k] * v, k, v) for k, v in features(text).items() if WEIGHTS[k] and v),
                   key=lambda x: -abs(x[0]))
    return ", ".join(f"{k} {v:.2f} ({c:+.2f})" for c, k, v in parts) or None
