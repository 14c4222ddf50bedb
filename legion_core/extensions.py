"""Helpers for extensions: ask the running Legion for an answer without caring which model gives it.

An extension (`legion_core.hooktypes.Extension`) gets the running `Legion` in `start(legion)`.
`llm_chat` and `llm_session` are thin wrappers over its pipeline, so every extension request is
routed, guarded (budgets apply), cached and audited like any other::

    from legion_core.extensions import llm_chat, llm_session

    answer = await llm_chat(legion, "Summarize: disk 91% full on db-1", caller="smart-alerts")
    print(answer.text)

    session = llm_session(legion, system="You triage alerts.", caller="smart-alerts")
    await session.say("CPU 99% on web-3 for 10 minutes")
    follow_up = await session.say("Is that worse than the disk alert?")

`legion` may be omitted when the process-wide API has started one (`legion_core.start()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from legion_core.errors import NoProviderAvailable
from legion_core.types import ChatRequest, ChatResponse, Message, new_id


async def _send(legion: Any, messages: list[Message], fields: dict[str, Any]) -> ChatResponse:
    """Through this `legion`'s pipeline, or (None) through the process-wide Python API, which
    runs its own loop: its pipeline must not be awaited from another loop directly."""
    if legion is None:
        from legion_core import api

        return await api.achat(messages=messages, **fields)
    if getattr(legion, "pipeline", None) is None:
        raise NoProviderAvailable("Legion is not started (no pipeline): await legion.start() first")
    return await legion.pipeline.chat(ChatRequest(messages=messages, **fields))


def _messages(prompt: str | Message | Sequence[Message | dict[str, Any]]) -> list[Message]:
    if isinstance(prompt, str):
        return [Message(role="user", content=prompt)]
    if isinstance(prompt, Message):
        return [prompt]
    return [m if isinstance(m, Message) else Message.model_validate(m) for m in prompt]


async def llm_chat(legion: Any, prompt: str | Message | Sequence[Message | dict[str, Any]], *,
                   system: str | None = None, caller: str | None = None,
                   **request: Any) -> ChatResponse:
    """One routed answer. `request` takes any `ChatRequest` field (tools, intent, max_tokens...).

    :param legion: the running kernel (None: the process-wide one).
    :param prompt: a string, a message, or a list of messages.
    :returns: the `ChatResponse` (`.text`, `.tool_calls`, `.provider`, `.cost_usd`...).
    """
    return await _send(legion, _messages(prompt), {"system": system, "caller": caller, **request})


class LLMSession:
    """A conversation that remembers its turns (and its tool results) between calls."""

    def __init__(self, legion: Any, *, system: str | None = None, caller: str | None = None,
                 session_id: str | None = None, **defaults: Any) -> None:
        self.legion = legion
        self.system = system
        self.caller = caller
        self.session_id = session_id or new_id("ses")
        self.defaults = defaults
        self.messages: list[Message] = []
        self.responses: list[ChatResponse] = []

    async def say(self, text: str | Message, **request: Any) -> ChatResponse:
        """Add a user turn, get the answer, remember both."""
        turn = text if isinstance(text, Message) else Message(role="user", content=text)
        fields = {"system": self.system, "caller": self.caller, "session_id": self.session_id,
                  **self.defaults, **request}
        resp = await _send(self.legion, [*self.messages, turn], fields)
        self.messages.append(turn)
        self.messages.append(Message(role="assistant", content=list(resp.content) or resp.text))
        self.responses.append(resp)
        return resp

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.responses)

    def reset(self) -> None:
        self.messages.clear()
        self.responses.clear()


def llm_session(legion: Any = None, *, system: str | None = None, caller: str | None = None,
                **defaults: Any) -> LLMSession:
    """A multi-turn conversation over the running Legion (`session.say(text)`)."""
    return LLMSession(legion, system=system, caller=caller, **defaults)
