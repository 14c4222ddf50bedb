"""OpenAI Chat Completions / Embeddings / Models, translated to and from Legion's types.

Request bodies are validated once, by the pydantic models below (unknown parameters are
rejected by name); the internal `ChatRequest` is then built without re-validation.
Streaming follows OpenAI's framing: `data: {chat.completion.chunk}` events, an optional
usage-only chunk (`stream_options.include_usage`), then `data: [DONE]`.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from legion_core.server import hints
from legion_core.server.errors import bad_request
from legion_core.types import (
    ChatResponse,
    DoneChunk,
    EmbedResponse,
    ErrorChunk,
    ImageBlock,
    RouteChunk,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
    UsageChunk,
    is_auto_model,
)

FINISH = {"end_turn": "stop", "max_tokens": "length", "tool_use": "tool_calls",
          "stop_sequence": "stop", "error": "stop"}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ request models
class TextPart(_M):
    type: Literal["text"]
    text: str


class RefusalPart(_M):
    type: Literal["refusal"]
    refusal: str


class ImageURL(_M):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_M):
    type: Literal["image_url"]
    image_url: ImageURL


UserPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]
AssistantPart = Annotated[TextPart | RefusalPart, Field(discriminator="type")]


class FunctionCall(_M):
    name: str
    arguments: str = ""


class ToolCallIn(_M):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class SystemMessage(_M):
    role: Literal["system", "developer"]
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(_M):
    role: Literal["user"]
    content: str | list[UserPart]
    name: str | None = None


class AssistantMessage(_M):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    tool_calls: list[ToolCallIn] | None = None
    name: str | None = None
    refusal: str | None = None
    reasoning_content: str | None = None


class ToolMessage(_M):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: str


ChatMessage = Annotated[SystemMessage | UserMessage | AssistantMessage | ToolMessage,
                        Field(discriminator="role")]


class FunctionDef(_M):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.:-]{1,128}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDef(_M):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_M):
    name: str


class NamedToolChoice(_M):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_M):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_M):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(_M):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class ChatCompletionRequest(_M):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    n: int | None = None
    seed: int | None = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    modalities: list[str] | None = None
    legion: hints.LegionExtras | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int | None) -> int | None:
        if v not in (None, 1):
            raise ValueError("only n=1 is supported; send one request per completion you need")
        return v

    @field_validator("presence_penalty", "frequency_penalty")
    @classmethod
    def _no_penalty(cls, v: float | None) -> float | None:
        if v:
            raise ValueError("penalties are not supported by the gateway; remove the parameter or send 0")
        return v

    @field_validator("logprobs")
    @classmethod
    def _no_logprobs(cls, v: bool | None) -> bool | None:
        if v:
            raise ValueError("logprobs are not supported by the gateway; remove the parameter")
        return v

    @field_validator("top_logprobs")
    @classmethod
    def _no_top_logprobs(cls, v: int | None) -> int | None:
        if v:
            raise ValueError("logprobs are not supported by the gateway; remove the parameter")
        return v

    @field_validator("logit_bias")
    @classmethod
    def _no_bias(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v:
            raise ValueError("logit_bias is not supported by the gateway; remove the parameter")
        return v

    @field_validator("modalities")
    @classmethod
    def _text_only(cls, v: list[str] | None) -> list[str] | None:
        if v and any(m != "text" for m in v):
            raise ValueError("only the 'text' modality is supported")
        return v

    @field_validator("stop")
    @classmethod
    def _stop_count(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 16:
            raise ValueError("at most 16 stop sequences")
        return v


class EmbeddingRequest(_M):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    legion: hints.LegionExtras | None = None


# ------------------------------------------------------------------ request → internal
def _image(url: str) -> ImageBlock:
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media = head[5:].split(";")[0] or "image/png"
        return ImageBlock(type="image", media_type=media, data=data, url=None)
    return ImageBlock(type="image", media_type="image/png", data=None, url=url)


def _parts_text(content: str | list[Any] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.text if isinstance(p, TextPart) else getattr(p, "refusal", "") for p in content)


def to_internal(body: ChatCompletionRequest, *, request_id: str, intent_header: str | None,
                no_cache: bool, caller: str | None = None,
                pass_through_token: str | None = None) -> Any:
    """The validated OpenAI request as a `ChatRequest`."""
    system: list[str] = []
    messages: list[Any] = []
    for i, m in enumerate(body.messages):
        if isinstance(m, SystemMessage):
            system.append(_parts_text(m.content))
        elif isinstance(m, UserMessage):
            if isinstance(m.content, str):
                messages.append(hints.message("user", m.content, m.name))
            else:
                parts = [hints.text(p.text) if isinstance(p, TextPart) else _image(p.image_url.url)
                         for p in m.content]
                messages.append(hints.message("user", parts, m.name))
        elif isinstance(m, AssistantMessage):
            blocks: list[Any] = []
            txt = _parts_text(m.content)
            if txt:
                blocks.append(hints.text(txt))
            for j, tc in enumerate(m.tool_calls or ()):
                try:
                    args = orjson.loads(tc.function.arguments) if tc.function.arguments.strip() else {}
                except orjson.JSONDecodeError:
                    raise bad_request(
                        f"messages.{i}.tool_calls.{j}.function.arguments is not valid JSON; send the "
                        "arguments string exactly as the model returned it",
                        param=f"messages.{i}.tool_calls.{j}.function.arguments") from None
                if not isinstance(args, dict):
                    args = {"value": args}
                blocks.append(ToolUseBlock(type="tool_use", id=tc.id,
                                                           name=tc.function.name, input=args))
            if not blocks:
                blocks.append(hints.text(""))
            content: Any = txt if len(blocks) == 1 and not m.tool_calls else blocks
            messages.append(hints.message("assistant", content, m.name))
        else:  # ToolMessage
            block = ToolResultBlock(type="tool_result", tool_use_id=m.tool_call_id,
                                                    content=_parts_text(m.content), is_error=False)
            messages.append(hints.message("tool", [block]))
    if not messages:
        raise bad_request("messages: at least one user message is needed besides system messages",
                          param="messages")
    fields: dict[str, Any] = {"messages": messages, "request_id": request_id}
    if system:
        fields["system"] = "\n\n".join(system)
    fields["model"] = None if is_auto_model(body.model) else body.model
    if body.tools:
        fields["tools"] = [ToolSpec(
            name=t.function.name, description=t.function.description or "",
            parameters=t.function.parameters or {"type": "object", "properties": {}},
            side_effects=True) for t in body.tools]
    choice = body.tool_choice
    if choice is not None:
        fields["tool_choice"] = choice if isinstance(choice, str) else choice.function.name
    if body.temperature is not None:
        fields["temperature"] = body.temperature
    if body.top_p is not None:
        fields["top_p"] = body.top_p
    mt = body.max_completion_tokens or body.max_tokens
    if mt is not None:
        fields["max_tokens"] = mt
    if body.stop is not None:
        fields["stop"] = [body.stop] if isinstance(body.stop, str) else list(body.stop)
    rf = body.response_format
    if rf is not None and rf.type != "text":
        if rf.type == "json_object":
            fields["response_format"] = {"type": "json_object"}
        else:
            if rf.json_schema is None:
                raise bad_request("response_format.json_schema is required when type is 'json_schema'",
                                  param="response_format.json_schema")
            fields["response_format"] = {"type": "json_schema", "name": rf.json_schema.name,
                                         "schema": rf.json_schema.schema_ or {},
                                         "strict": bool(rf.json_schema.strict)}
    if body.reasoning_effort in ("low", "medium", "high"):
        fields["thinking"] = True
        fields["metadata"] = {"reasoning_effort": body.reasoning_effort}
    fields["stream"] = bool(body.stream)
    fields["intent"] = hints.build_intent(intent_header, body.legion)
    fields["cache"] = not no_cache
    if body.user:
        fields.setdefault("metadata", {})["user"] = body.user
    if caller:
        fields["caller"] = caller
    if pass_through_token:
        fields["pass_through_token"] = pass_through_token
    hints.apply_extras(fields, body.legion)
    return hints.chat_request(**fields)


def embed_input(body: EmbeddingRequest) -> list[str]:
    inp = body.input
    if isinstance(inp, str):
        return [inp]
    if inp and not isinstance(inp[0], str):
        raise bad_request("input: token arrays are not supported; send the text as a string or a list "
                          "of strings", param="input")
    if not inp:
        raise bad_request("input: send at least one string", param="input")
    return list(inp)  # type: ignore[arg-type]


# ------------------------------------------------------------------ internal → response
def _completion_id(resp_id: str) -> str:
    return "chatcmpl-" + resp_id.removeprefix("msg_")


def _tool_calls(resp: ChatResponse) -> list[dict[str, Any]]:
    return [{"id": b.id, "type": "function",
             "function": {"name": b.name, "arguments": orjson.dumps(b.input).decode()}}
            for b in resp.content if isinstance(b, ToolUseBlock)]


def usage_json(u: Usage) -> dict[str, int]:
    return {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
            "total_tokens": u.input_tokens + u.output_tokens}


def response_json(resp: ChatResponse) -> dict[str, Any]:
    calls = _tool_calls(resp)
    text = resp.text
    msg: dict[str, Any] = {"role": "assistant", "content": text if (text or not calls) else None,
                           "refusal": None}
    if calls:
        msg["tool_calls"] = calls
    thinking = resp.thinking
    if thinking:
        msg["reasoning_content"] = thinking
    return {
        "id": _completion_id(resp.id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": resp.model,
        "choices": [{"index": 0, "message": msg, "logprobs": None,
                     "finish_reason": FINISH.get(resp.stop_reason, "stop")}],
        "usage": usage_json(resp.usage),
        "system_fingerprint": None,
    }


class StreamEncoder:
    """Turns pipeline chunks into OpenAI SSE bytes. One per stream."""

    def __init__(self, route: RouteChunk, include_usage: bool, completion_id: str) -> None:
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                "model": route.model}
        dumped = orjson.dumps(head)
        # b'data: {"id":..,"model":..,"choices":[{"index":0,"delta":' + delta + tail
        self._pre = b"data: " + dumped[:-1] + b',"choices":[{"index":0,"delta":'
        self._tail = b',"logprobs":null,"finish_reason":null}]}\n\n'
        self._head_no_choices = b"data: " + dumped[:-1] + b',"choices":[],"usage":'
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self._tools_seen: set[int] = set()

    def start(self) -> bytes:
        return self._pre + b'{"role":"assistant","content":""}' + self._tail

    def encode(self, chunk: Any) -> bytes | None:
        if isinstance(chunk, TextDelta):
            return self._pre + b'{"content":' + orjson.dumps(chunk.text) + b"}" + self._tail
        if isinstance(chunk, ThinkingDelta):
            return (self._pre + b'{"reasoning_content":' + orjson.dumps(chunk.thinking) + b"}"
                    + self._tail)
        if isinstance(chunk, ToolCallDelta):
            call: dict[str, Any] = {"index": chunk.index}
            if chunk.index not in self._tools_seen:
                self._tools_seen.add(chunk.index)
                call["id"] = chunk.id or f"call_{chunk.index}"
                call["type"] = "function"
                call["function"] = {"name": chunk.name or "", "arguments": chunk.arguments_delta}
            else:
                call["function"] = {"arguments": chunk.arguments_delta}
            return self._pre + orjson.dumps({"tool_calls": [call]}) + self._tail
        if isinstance(chunk, UsageChunk):
            self.usage = chunk.usage
            return None
        if isinstance(chunk, DoneChunk):
            if chunk.response is not None:
                self.usage = chunk.response.usage
            finish = FINISH.get(chunk.stop_reason, "stop")
            out = self._pre + b"{}" + b',"logprobs":null,"finish_reason":"' + finish.encode() + b'"}]}\n\n'
            if self.include_usage:
                out += self._head_no_choices + orjson.dumps(usage_json(self.usage or Usage())) + b"}\n\n"
            return out + b"data: [DONE]\n\n"
        if isinstance(chunk, ErrorChunk):
            return b"data: " + orjson.dumps({"error": {"message": chunk.message, "type": "upstream_error",
                                                       "code": chunk.kind}}) + b"\n\n"
        return None


# ------------------------------------------------------------------ embeddings and models
def _b64(vec: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()


def embedding_json(resp: EmbedResponse, encoding: str | None, dimensions: int | None) -> dict[str, Any]:
    data = []
    for i, v in enumerate(resp.embeddings):
        if dimensions:
            v = v[:dimensions]
        data.append({"object": "embedding", "index": i,
                     "embedding": _b64(v) if encoding == "base64" else v})
    return {"object": "list", "data": data, "model": resp.model,
            "usage": {"prompt_tokens": resp.usage.input_tokens, "total_tokens": resp.usage.input_tokens}}


def model_json(mid: str, owned_by: str) -> dict[str, Any]:
    return {"id": mid, "object": "model", "created": 0, "owned_by": owned_by}
