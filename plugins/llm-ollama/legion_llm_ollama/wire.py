"""Kernel types <-> Ollama `/api/chat` JSON. Pure functions, no I/O."""

from __future__ import annotations

import json
from typing import Any

from legion_core.errors import BadRequest
from legion_core.types import (
    ChatRequest,
    ChatResponse,
    ContentBlock,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
    new_id,
)

#: Ollama `capabilities` (from /api/show) -> kernel capabilities.
CAPABILITIES: dict[str, set[str]] = {
    "completion": {"streaming", "json"},
    "tools": {"tools"},
    "vision": {"vision"},
    "thinking": {"thinking"},
    "embedding": {"embeddings"},
}


def _image_b64(block: ImageBlock, where: str) -> str:
    if block.data:
        return block.data
    if block.url and block.url.startswith("data:"):
        return block.url.partition(",")[2]
    raise BadRequest(f"{where}: Ollama takes images inline: give the image block base64 `data` "
                     "(or a data: URL), not a remote URL")


def request_to_wire(request: ChatRequest, model: str, *, stream: bool,
                    options: dict[str, Any] | None = None, keep_alive: Any = None) -> dict[str, Any]:
    """The `/api/chat` body. Tool results become `tool` messages (with `tool_call_id` and `tool_name`), images go to
    the message's `images` list, and thinking/tool calls of earlier assistant turns are replayed."""
    msgs: list[dict[str, Any]] = []
    if request.system:
        msgs.append({"role": "system", "content": request.system})
    tool_names: dict[str, str] = {}
    for i, m in enumerate(request.messages):
        where = f"messages[{i}]"
        if isinstance(m.content, str):
            msgs.append({"role": m.role, "content": m.content})
            continue
        text: list[str] = []
        images: list[str] = []
        calls: list[dict[str, Any]] = []
        thinking: list[str] = []
        results: list[dict[str, Any]] = []
        for b in m.content:
            if isinstance(b, TextBlock):
                text.append(b.text)
            elif isinstance(b, ImageBlock):
                images.append(_image_b64(b, where))
            elif isinstance(b, ToolUseBlock):
                tool_names[b.id] = b.name
                calls.append({"id": b.id, "function": {"name": b.name, "arguments": b.input}})
            elif isinstance(b, ThinkingBlock):
                thinking.append(b.thinking)
            elif isinstance(b, ToolResultBlock):
                res: dict[str, Any] = {"role": "tool", "content": b.text, "tool_call_id": b.tool_use_id}
                if b.tool_use_id in tool_names:
                    res["tool_name"] = tool_names[b.tool_use_id]
                results.append(res)
        if text or images or calls or thinking or not results:
            role = "user" if m.role == "tool" else m.role
            out: dict[str, Any] = {"role": role, "content": "".join(text)}
            if images:
                out["images"] = images
            if calls:
                out["tool_calls"] = calls
            if thinking and m.role == "assistant":
                out["thinking"] = "".join(thinking)
            msgs.append(out)
        msgs.extend(results)
    body: dict[str, Any] = {"model": model, "messages": msgs, "stream": stream}
    if request.tools and request.tool_choice != "none":
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                           "parameters": t.parameters}}
                         for t in request.tools]
    if request.thinking:
        body["think"] = True
    rf = request.response_format
    if rf:
        schema = rf.get("schema") or (rf.get("json_schema") or {}).get("schema")
        body["format"] = schema if schema else "json"
    opts: dict[str, Any] = dict(options or {})
    if request.temperature is not None:
        opts["temperature"] = request.temperature
    if request.top_p is not None:
        opts["top_p"] = request.top_p
    if request.max_tokens is not None:
        opts["num_predict"] = request.max_tokens
    if request.stop:
        opts["stop"] = list(request.stop)
    if opts:
        body["options"] = opts
    if keep_alive is not None:
        body["keep_alive"] = keep_alive
    return body


def parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw.strip():
        try:
            v = json.loads(raw)
            return v if isinstance(v, dict) else {"value": v}
        except json.JSONDecodeError:
            return {"_raw": raw}
    return {}


def tool_uses(calls: list[dict[str, Any]] | None) -> list[ToolUseBlock]:
    out = []
    for c in calls or []:
        fn = c.get("function") or {}
        out.append(ToolUseBlock(id=c.get("id") or new_id("call"), name=fn.get("name", ""),
                                input=parse_arguments(fn.get("arguments"))))
    return out


def usage(data: dict[str, Any]) -> Usage:
    return Usage(input_tokens=int(data.get("prompt_eval_count") or 0),
                 output_tokens=int(data.get("eval_count") or 0))


def stop_reason(done_reason: str | None, had_tool_calls: bool) -> str:
    if had_tool_calls:
        return "tool_use"
    if done_reason == "length":
        return "max_tokens"
    return "end_turn"


def response_from_wire(data: dict[str, Any], *, provider: str, tier: str) -> ChatResponse:
    msg = data.get("message") or {}
    blocks: list[ContentBlock] = []
    if msg.get("thinking"):
        blocks.append(ThinkingBlock(thinking=msg["thinking"]))
    if msg.get("content"):
        blocks.append(TextBlock(text=msg["content"]))
    calls = tool_uses(msg.get("tool_calls"))
    blocks.extend(calls)
    return ChatResponse(model=data.get("model", ""), provider=provider, tier=tier, content=blocks,
                        stop_reason=stop_reason(data.get("done_reason"), bool(calls)),  # type: ignore[arg-type]
                        usage=usage(data))
