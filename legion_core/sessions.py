"""Conversations that remember: `legion_core.session(instructions=..., id=...)`.

History lives in an in-memory LRU (`llm.session.lru_size`) and is persisted to the SQLite
`conversations` table by id (through the pipeline's batch writer), so a session can be resumed
later, also after a restart, with `session(id=...)`. Each turn carries `session_id`, which is
what the per-session token budget (`llm.session.token_budget`) counts against.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from legion_core.types import ChatRequest, ChatResponse, Message, TextBlock, ToolUseBlock, new_id

if TYPE_CHECKING:
    from legion_core.lifecycle import Legion


@dataclass
class Conversation:
    id: str
    instructions: str | None = None
    messages: list[Message] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


class SessionStore:
    """LRU in front of the `conversations` table."""

    def __init__(self, legion: Legion) -> None:
        self.legion = legion
        self.size = legion.settings.llm.session.lru_size
        self._lru: OrderedDict[str, Conversation] = OrderedDict()

    def get(self, conv_id: str) -> Conversation | None:
        conv = self._lru.get(conv_id)
        if conv is not None:
            self._lru.move_to_end(conv_id)
            return conv
        store = self.legion.store
        assert store is not None, "Legion is not started"
        pipeline = self.legion.pipeline
        if pipeline is not None:
            pipeline.writer.flush()  # a save may still be queued
        with store.lock:
            row = store.conn.execute(
                "SELECT instructions, messages, created, updated FROM conversations WHERE id = ?",
                (conv_id,)).fetchone()
        if row is None:
            return None
        msgs = [Message.model_validate(m) for m in json.loads(row[1] or "[]")]
        conv = Conversation(conv_id, row[0], msgs, row[2] or time.time(), row[3] or time.time())
        self._remember(conv)
        return conv

    def save(self, conv: Conversation) -> None:
        conv.updated = time.time()
        self._remember(conv)
        raw = json.dumps([m.model_dump(mode="json", exclude_none=True) for m in conv.messages])
        sql = ("INSERT OR REPLACE INTO conversations (id, instructions, messages, created, updated) "
               "VALUES (?, ?, ?, ?, ?)")
        params = (conv.id, conv.instructions, raw, conv.created, conv.updated)
        if self.legion.pipeline is not None:
            self.legion.pipeline.writer.put(sql, params)
        else:
            assert self.legion.store is not None, "Legion is not started"
            with self.legion.store.lock:
                self.legion.store.conn.execute(sql, params)

    def _remember(self, conv: Conversation) -> None:
        self._lru[conv.id] = conv
        self._lru.move_to_end(conv.id)
        while len(self._lru) > self.size:
            self._lru.popitem(last=False)


def store_for(legion: Legion) -> SessionStore:
    s = getattr(legion, "_session_store", None)
    if s is None:
        s = SessionStore(legion)
        legion._session_store = s  # type: ignore[attr-defined]
    return s


class Session:
    """A conversation with instructions. `ask()`/`aask()` send the history plus the new message."""

    def __init__(self, legion: Legion, conv: Conversation, runner: Any = None) -> None:
        self.legion = legion
        self.conversation = conv
        self._runner = runner

    @property
    def id(self) -> str:
        return self.conversation.id

    @property
    def instructions(self) -> str | None:
        return self.conversation.instructions

    @property
    def messages(self) -> list[Message]:
        return list(self.conversation.messages)

    def request(self, message: str | Message, **kw: Any) -> ChatRequest:
        msg = message if isinstance(message, Message) else Message(role="user", content=message)
        from legion_core.api import build_request

        return build_request(messages=[*self.conversation.messages, msg],
                             system=kw.pop("system", None) or self.instructions,
                             session_id=self.id, **kw)

    async def _ask(self, message: str | Message, quality_check: Any = None, **kw: Any) -> ChatResponse:
        req = self.request(message, **kw)
        resp = await self.legion.pipeline.chat(req, quality_check=quality_check)
        self.conversation.messages = [*req.messages, _assistant(resp)]
        store_for(self.legion).save(self.conversation)
        return resp

    async def aask(self, message: str | Message, *, quality_check: Any = None, **kw: Any) -> ChatResponse:
        """Runs on the kernel's loop (providers' connection pools live there)."""
        from legion_core.api import _arun

        return await _arun(self._ask(message, quality_check, **kw))

    def ask(self, message: str | Message, *, quality_check: Any = None, **kw: Any) -> ChatResponse:
        from legion_core.api import _run

        return _run(self._ask(message, quality_check, **kw))

    def __repr__(self) -> str:
        return f"<Session {self.id} turns={len(self.conversation.messages)}>"


def _assistant(resp: ChatResponse) -> Message:
    blocks: list[Any] = [b for b in resp.content if isinstance(b, TextBlock | ToolUseBlock)]
    if len(blocks) == 1 and isinstance(blocks[0], TextBlock):
        return Message(role="assistant", content=blocks[0].text)
    return Message(role="assistant", content=blocks or "")


def open_session(legion: Legion, *, instructions: str | None = None, id: str | None = None) -> Session:
    """Resume conversation `id` if it exists (new `instructions` replace the stored ones), else
    start one (with `id` if given)."""
    store = store_for(legion)
    conv = store.get(id) if id else None
    if conv is None:
        conv = Conversation(id or new_id("conv"), instructions)
    elif instructions is not None:
        conv.instructions = instructions
    return Session(legion, conv)
