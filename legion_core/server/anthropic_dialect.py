"""Anthropic Messages API, translated to and from Legion's types.

Streaming emits Anthropic's typed events in order: `message_start`, then for each content
block `content_block_start` / `content_block_delta`* / `content_block_stop` (text, thinking
with its signature, tool_use with `input_json_delta`), then `message_delta` (stop reason and
usage) and `message_stop`. A stream that breaks after it started ends with an `error` event.

Tool results: Anthropic sends them as `tool_result` blocks in a user turn. Internally they
become a `role="tool"` message (the same shape the OpenAI dialect produces), followed by a
user message with the turn's other blocks, so providers see one convention.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from legion_core.server import hints
from legion_core.types import (
    ChatResponse,
    DoneChunk,
    ErrorChunk,
    ImageBlock,
    RouteChunk,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
    UsageChunk,
    is_auto_model,
)

STOP = {"end_turn": "end_turn", "max_tokens": "max_tokens", "tool_use": "tool_use",
        "stop_sequence": "stop_sequence", "error": "end_turn"}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ request models
class TextIn(_M):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None
    citations: list[Any] | None = None


class Base64Source(_M):
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(_M):
    type: Literal["url"]
    url: str


class ImageIn(_M):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]
    cache_control: dict[str, Any] | None = None


class ToolUseIn(_M):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)
    cache_control: dict[str, Any] | None = None


ResultPart = Annotated[TextIn | ImageIn, Field(discriminator="type")]


class ToolResultIn(_M):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ResultPart] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingIn(_M):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingIn(_M):
    type: Literal["redacted_thinking"]
    data: str


BlockIn = Annotated[TextIn | ImageIn | ToolUseIn | ToolResultIn | ThinkingIn | RedactedThinkingIn,
                    Field(discriminator="type")]


class MessageIn(_M):
    role: Literal["user", "assistant"]
    content: str | list[BlockIn]


class ToolIn(_M):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.:-]{1,128}$")
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoiceIn(_M):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(_M):
    type: Literal["enabled", "disabled"]
    budget_tokens: int | None = Field(default=None, ge=1)


class MetadataIn(_M):
    user_id: str | None = None


class MessagesRequest(_M):
    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextIn] | None = None
    stop_sequences: list[str] | None = None
    stream: bool | None = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingConfig | None = None
    metadata: MetadataIn | None = None
    service_tier: str | None = None
    legion: hints.LegionExtras | None = None


class CountTokensRequest(_M):
    model: str = Field(min_length=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextIn] | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    thinking: ThinkingConfig | None = None
    legion: hints.LegionExtras | None = None


# ------------------------------------------------------------------ request → internal
def _image(src: Base64Source | URLSource) -> ImageBlock:
    if isinstance(src, Base64Source):
        return ImageBlock(type="image", media_type=src.media_type, data=src.data, url=None)
    return ImageBlock(type="image", media_type="image/png", data=None, url=src.url)


def _block(b: Any) -> Any:
    if isinstance(b, TextIn):
        return hints.text(b.text)
    if isinstance(b, ImageIn):
        return _image(b.source)
    if isinstance(b, ToolUseIn):
        return ToolUseBlock(type="tool_use", id=b.id, name=b.name, input=b.input)
    if isinstance(b, ThinkingIn):
        return ThinkingBlock(type="thinking", thinking=b.thinking, signature=b.signature)
    return None  # redacted thinking: opaque to every other provider


def _result(b: ToolResultIn) -> ToolResultBlock:
    content: Any
    if b.content is None:
        content = ""
    elif isinstance(b.content, str):
        content = b.content
    else:
        content = [_block(p) for p in b.content]
    return ToolResultBlock(type="tool_result", tool_use_id=b.tool_use_id,
                                           content=content, is_error=bool(b.is_error))


def convert_messages(messages: list[MessageIn]) -> list[Any]:
    out: list[Any] = []
    for m in messages:
        if isinstance(m.content, str):
            out.append(hints.message(m.role, m.content))
            continue
        results = [_result(b) for b in m.content if isinstance(b, ToolResultIn)]
        others = [x for x in (_block(b) for b in m.content if not isinstance(b, ToolResultIn))
                  if x is not None]
        if results:
            out.append(hints.message("tool", results))
        if others or not results:
            out.append(hints.message(m.role, others or [hints.text("")]))
    return out


def system_text(system: str | list[TextIn] | None) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system or None
    return "\n\n".join(b.text for b in system) or None


def convert_tools(tools: list[ToolIn] | None) -> list[ToolSpec]:
    return [ToolSpec(name=t.name, description=t.description or "",
                                     parameters=t.input_schema, side_effects=True)
            for t in tools or ()]


def to_internal(body: MessagesRequest, *, request_id: str, intent_header: str | None, no_cache: bool,
                caller: str | None = None, pass_through_token: str | None = None) -> Any:
    fields: dict[str, Any] = {
        "messages": convert_messages(body.messages),
        "request_id": request_id,
        "model": None if is_auto_model(body.model) else body.model,
        "max_tokens": body.max_tokens,
        "stream": bool(body.stream),
        "intent": hints.build_intent(intent_header, body.legion),
        "cache": not no_cache,
    }
    sys_text = system_text(body.system)
    if sys_text:
        fields["system"] = sys_text
    if body.tools:
        fields["tools"] = convert_tools(body.tools)
    tc = body.tool_choice
    if tc is not None:
        fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}.get(tc.type) or tc.name
        if tc.type == "tool" and not tc.name:
            from legion_core.server.errors import bad_request

            raise bad_request("tool_choice.name is required when tool_choice.type is 'tool'",
                              param="tool_choice.name")
    if body.temperature is not None:
        fields["temperature"] = body.temperature
    if body.top_p is not None:
        fields["top_p"] = body.top_p
    if body.stop_sequences:
        fields["stop"] = list(body.stop_sequences)
    if body.thinking is not None and body.thinking.type == "enabled":
        fields["thinking"] = True
        if body.thinking.budget_tokens:
            fields["metadata"] = {"thinking_budget_tokens": body.thinking.budget_tokens}
    if body.metadata and body.metadata.user_id:
        fields.setdefault("metadata", {})["user"] = body.metadata.user_id
    if caller:
        fields["caller"] = caller
    if pass_through_token:
        fields["pass_through_token"] = pass_through_token
    hints.apply_extras(fields, body.legion)
    return hints.chat_request(**fields)


# ------------------------------------------------------------------ internal → response
def block_json(b: Any) -> dict[str, Any] | None:
    if isinstance(b, TextBlock):
        return {"type": "text", "text": b.text}
    if isinstance(b, ThinkingBlock):
        return {"type": "thinking", "thinking": b.thinking, "signature": b.signature or ""}
    if isinstance(b, ToolUseBlock):
        return {"type": "tool_use", "id": b.id, "name": b.name, "input": b.input}
    return None


def usage_json(u: Usage) -> dict[str, Any]:
    return {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def response_json(resp: ChatResponse) -> dict[str, Any]:
    content = [j for j in (block_json(b) for b in resp.content) if j is not None]
    return {"id": resp.id if resp.id.startswith("msg_") else "msg_" + resp.id, "type": "message",
            "role": "assistant", "model": resp.model, "content": content,
            "stop_reason": STOP.get(resp.stop_reason, "end_turn"), "stop_sequence": None,
            "usage": usage_json(resp.usage)}


def _event(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class StreamEncoder:
    """Turns pipeline chunks into Anthropic's typed SSE events. One per stream."""

    def __init__(self, route: RouteChunk, message_id: str, input_tokens: int = 0) -> None:
        self.route = route
        self.message_id = message_id
        #: An estimate for `message_start` (clients show context use from it); the exact
        #: count follows in `message_delta` when the provider reports it.
        self.input_tokens = input_tokens
        self._index = -1
        self._open: tuple[str, int] | None = None  # ("text"|"thinking"|"tool", tool index)
        self.usage: Usage | None = None

    def start(self) -> bytes:
        msg: dict[str, Any] = {"id": self.message_id, "type": "message", "role": "assistant", "content": [],
               "model": self.route.model, "stop_reason": None, "stop_sequence": None,
               "usage": {"input_tokens": self.input_tokens, "output_tokens": 0}}
        return _event(b"message_start", {"type": "message_start", "message": msg})

    def _close(self, signature: str | None = None) -> bytes:
        if self._open is None:
            return b""
        out = b""
        if self._open[0] == "thinking":
            out += _event(b"content_block_delta", {
                "type": "content_block_delta", "index": self._index,
                "delta": {"type": "signature_delta", "signature": signature or ""}})
        self._open = None
        return out + _event(b"content_block_stop", {"type": "content_block_stop", "index": self._index})

    def _switch(self, kind: tuple[str, int], block: dict[str, Any]) -> bytes:
        out = self._close()
        self._index += 1
        self._open = kind
        return out + _event(b"content_block_start", {"type": "content_block_start", "index": self._index,
                                                     "content_block": block})

    def encode(self, chunk: Any) -> bytes | None:
        if isinstance(chunk, TextDelta):
            out = b"" if self._open == ("text", 0) else self._switch(("text", 0), {"type": "text", "text": ""})
            return out + b'event: content_block_delta\ndata: {"type":"content_block_delta","index":' + \
                str(self._index).encode() + b',"delta":{"type":"text_delta","text":' + \
                orjson.dumps(chunk.text) + b"}}\n\n"
        if isinstance(chunk, ThinkingDelta):
            out = b"" if self._open == ("thinking", 0) else self._switch(
                ("thinking", 0), {"type": "thinking", "thinking": "", "signature": ""})
            return out + _event(b"content_block_delta", {
                "type": "content_block_delta", "index": self._index,
                "delta": {"type": "thinking_delta", "thinking": chunk.thinking}})
        if isinstance(chunk, ToolCallDelta):
            out = b""
            if self._open != ("tool", chunk.index):
                out = self._switch(("tool", chunk.index), {
                    "type": "tool_use", "id": chunk.id or f"toolu_{chunk.index}", "name": chunk.name or "",
                    "input": {}})
            if chunk.arguments_delta:
                out += _event(b"content_block_delta", {
                    "type": "content_block_delta", "index": self._index,
                    "delta": {"type": "input_json_delta", "partial_json": chunk.arguments_delta}})
            return out or None
        if isinstance(chunk, UsageChunk):
            self.usage = chunk.usage
            return None
        if isinstance(chunk, DoneChunk):
            sig = None
            if chunk.response is not None:
                self.usage = chunk.response.usage
                sig = next((b.signature for b in chunk.response.content
                            if isinstance(b, ThinkingBlock) and b.signature), None)
            u = self.usage or Usage()
            return (self._close(sig)
                    + _event(b"message_delta", {
                        "type": "message_delta",
                        "delta": {"stop_reason": STOP.get(chunk.stop_reason, "end_turn"),
                                  "stop_sequence": None},
                        "usage": {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens}})
                    + b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
        if isinstance(chunk, ErrorChunk):
            etype = "overloaded_error" if chunk.kind in ("unavailable", "no_provider") else "api_error"
            return _event(b"error", {"type": "error", "error": {"type": etype, "message": chunk.message}})
        return None


def model_json(mid: str, owned_by: str) -> dict[str, Any]:
    """A model in the shape of Anthropic's `GET /v1/models`."""
    return {"type": "model", "id": mid, "display_name": f"{mid} ({owned_by})",
            "created_at": "1970-01-01T00:00:00Z"}
