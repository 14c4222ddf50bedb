"""The one internal currency.

Every provider translates its wire format to and from these models, and every
HTTP dialect (OpenAI, Anthropic, native) does the same. Nothing outside a
provider plugin or a dialect module should see a vendor's JSON.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
Tier = Literal["local", "fleet", "openai_compat", "cloud", "frontier"]
#: Tiers from cheapest/most private to most capable. Tier 0 (the cache) is not a provider tier.
TIERS: tuple[str, ...] = ("local", "fleet", "openai_compat", "cloud", "frontier")
#: Tiers whose traffic leaves the operator's machines; `privacy=strict` never reaches them.
CLOUD_TIERS: frozenset[str] = frozenset({"cloud", "frontier"})
Capability = Literal["tools", "vision", "json", "thinking", "embeddings", "streaming"]
StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence", "error"]
#: The virtual model the gateway advertises in /v1/models for "let Legion choose".
AUTO_MODEL = "legion/auto"
#: Every model name that means "let Legion choose" (compared stripped and lower-cased). The one
#: definition for the Python API, the router, the cache key and every gateway dialect.
AUTO_MODELS: frozenset[str] = frozenset({AUTO_MODEL, "auto", "legion", "legion-auto", "default", ""})


def is_auto_model(name: str | None) -> bool:
    """True when `name` asks Legion to route (None, or one of `AUTO_MODELS` in any case)."""
    return name is None or name in AUTO_MODELS or name.strip().lower() in AUTO_MODELS


_ID_SEED = uuid.uuid4().hex[:12]  # per process: ids stay unique across gateway replicas
_ID_COUNTER = itertools.count(1)


def new_id(prefix: str = "req") -> str:
    """A unique id: a per-process random part and a counter (uuid4 per request cost ~14 µs of
    `os.urandom` here, on the hot path twice per request)."""
    return f"{prefix}_{_ID_SEED}{next(_ID_COUNTER):012x}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


M = TypeVar("M", bound=BaseModel)
_PLANS: dict[type[Any], tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str], frozenset[str]]] = {}
_IMMUTABLE = (str, int, float, bool, bytes, type(None), tuple, frozenset)


def _plan(cls: type[Any]) -> tuple[dict[str, Any], tuple[tuple[str, Any], ...], frozenset[str], frozenset[str]]:
    static: dict[str, Any] = {}
    factories: list[tuple[str, Any]] = []
    for name, f in cls.model_fields.items():
        if f.default_factory is not None:
            factories.append((name, f.default_factory))
        elif not f.is_required():
            if isinstance(f.default, _IMMUTABLE):
                static[name] = f.default
            else:  # a mutable default: a copy per instance, as pydantic makes
                factories.append((name, lambda d=f.default: copy.deepcopy(d)))
    required = frozenset(n for n, f in cls.model_fields.items() if f.is_required())
    plan = _PLANS[cls] = (static, tuple(factories), required, frozenset(cls.model_fields))
    return plan


def build(cls: type[M], values: dict[str, Any]) -> M:
    """An instance of `cls` from values the caller vouches for (already of the field's types,
    e.g. from a dialect model that validated them), without validating them again: the hot
    path builds several models per request and validation was most of their cost. Defaults
    are filled as pydantic fills them and `model_fields_set` is the given keys, like
    `model_construct`; a missing required field or an unknown one is still an error."""
    static, factories, required, known = _PLANS.get(cls) or _plan(cls)
    if not required <= values.keys() or not values.keys() <= known:
        missing, unknown = sorted(required - values.keys()), sorted(values.keys() - known)
        raise TypeError(f"{cls.__name__}: missing {missing}, unknown {unknown}")
    d = {**static, **values}
    for name, factory in factories:
        if name not in values:
            d[name] = factory()
    return instance(cls, d, set(values))


def instance(cls: type[M], fields: dict[str, Any], fields_set: set[str]) -> M:
    """The instance whose `__dict__` is `fields` (every field present, none validated) and whose
    `model_fields_set` is `fields_set`: what `build` ends with, and all the router needs when it
    gives every field itself."""
    obj = _new(cls)
    _set(obj, "__dict__", fields)
    _set(obj, "__pydantic_fields_set__", fields_set)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def set_fields(obj: BaseModel, values: dict[str, Any]) -> None:
    """`obj.a = x; obj.b = y; ...` in one step, for models without `validate_assignment` (ours):
    what pydantic's `__setattr__` does per field (`__dict__` and `model_fields_set`), at a third
    of the cost when several fields change at once on the hot path. Unknown names still fail."""
    cls = type(obj)
    if not values.keys() <= (_PLANS.get(cls) or _plan(cls))[3]:
        raise AttributeError(f"{cls.__name__} has no field(s) {sorted(values.keys() - cls.model_fields.keys())}")
    obj.__dict__.update(values)
    obj.__pydantic_fields_set__.update(values)


_new = object.__new__
_set = object.__setattr__


# ---------------------------------------------------------------- content blocks
class TextBlock(_Model):
    type: Literal["text"] = "text"
    text: str


class ImageBlock(_Model):
    """An image, inline (base64 `data`) or by `url`."""

    type: Literal["image"] = "image"
    media_type: str = "image/png"
    data: str | None = None
    url: str | None = None


class ToolUseBlock(_Model):
    """A tool call the model made."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Model):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool = False

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


class ThinkingBlock(_Model):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str | None = None


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock,
    Field(discriminator="type"),
]


class Message(_Model):
    role: Role
    content: str | list[ContentBlock]
    name: str | None = None

    def blocks(self) -> list[Any]:
        """Content as a list of blocks, whatever shape it was given in."""
        if isinstance(self.content, str):
            return [TextBlock(text=self.content)]
        return list(self.content)

    @property
    def text(self) -> str:
        """The concatenated text blocks (tool results included), without thinking."""
        out: list[str] = []
        for b in self.blocks():
            if isinstance(b, TextBlock):
                out.append(b.text)
            elif isinstance(b, ToolResultBlock):
                out.append(b.text)
        return "".join(out)


# ---------------------------------------------------------------- tools
class ToolSpec(_Model):
    """A tool the model may call. `parameters` is a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    #: Calls to a tool with side effects must not be answered from the cache.
    side_effects: bool = True


class ToolCall(_Model):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResult(_Model):
    tool_use_id: str
    content: str
    is_error: bool = False


# ---------------------------------------------------------------- intent and request
class Intent(_Model):
    """What the caller needs, as opposed to which model it names."""

    privacy: Literal["normal", "strict"] = "normal"
    capability: Literal["basic", "moderate", "reasoning"] | None = None
    cost: Literal["minimize", "normal"] = "normal"


class ChatRequest(_Model):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    system: str | None = None
    #: A concrete model id, a routing alias, or None / any of `AUTO_MODELS` (route for me).
    model: str | None = None
    tier: str | None = None
    provider: str | None = None
    tools: list[ToolSpec] = Field(default_factory=list)
    tool_choice: Literal["auto", "none", "required"] | str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    #: `{"type": "json_object"}` or `{"type": "json_schema", "schema": {...}}`.
    response_format: dict[str, Any] | None = None
    thinking: bool = False
    stream: bool = False
    intent: Intent = Field(default_factory=Intent)
    #: Extra routing constraints added by guards, e.g. {"max_tier": "fleet"} or {"free_only": True}.
    constraints: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True
    escalate: bool = False
    max_escalations: int = 2
    compress_level: int | None = None
    caller: str | None = None
    #: Caller profile; `system` callers skip the guards.
    profile: Literal["user", "system"] = "user"
    session_id: str | None = None
    request_id: str = Field(default_factory=new_id)
    #: Credential to forward upstream instead of Legion's own (gateway `pass_through`). Never logged.
    pass_through_token: str | None = Field(default=None, exclude=True, repr=False)
    metadata: dict[str, Any] = Field(default_factory=dict)

    def required_capabilities(self) -> set[str]:
        caps: set[str] = set()
        if self.tools:
            caps.add("tools")
        if self.stream:
            caps.add("streaming")
        if self.response_format:
            caps.add("json")
        if self.thinking:
            caps.add("thinking")
        for m in self.messages:
            if isinstance(m.content, list) and any(isinstance(b, ImageBlock) for b in m.content):
                caps.add("vision")
                break
        return caps

    def last_user_text(self) -> str:
        for m in reversed(self.messages):
            if m.role == "user":
                return m.text
        return ""


class Usage(_Model):
    input_tokens: int = 0
    output_tokens: int = 0
    #: True when the provider did not report usage and Legion estimated it.
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Attempt(_Model):
    """One provider call made while serving a request (failover or escalation)."""

    provider: str
    model: str
    tier: str
    outcome: Literal["ok", "failed", "quality_failed", "skipped"]
    error: str | None = None
    error_kind: str | None = None
    failures: list[str] = Field(default_factory=list)
    duration_ms: float = 0.0


class CandidateScore(_Model):
    provider: str
    model: str
    tier: str
    score: float = 0.0
    rule: str | None = None
    dropped: str | None = None  # why it was filtered out; None if it stayed in


class RoutingDecision(_Model):
    """Why this request went where it went. Explainable without any model call."""

    provider: str | None = None
    model: str | None = None
    tier: str | None = None
    rule: str | None = None
    strategy: str = "cost_optimized"
    reason: str = ""
    complexity: float | None = None
    signals: dict[str, float] = Field(default_factory=dict)
    estimated_tokens: int = 0
    #: Every candidate considered, in final order; the dropped ones say why.
    candidates: list[CandidateScore] = Field(default_factory=list)
    compress_level: int = 0
    decision_us: float = 0.0

    def viable(self) -> list[CandidateScore]:
        return [c for c in self.candidates if c.dropped is None]


class ChatResponse(_Model):
    id: str = Field(default_factory=lambda: new_id("msg"))
    request_id: str | None = None
    model: str = ""
    provider: str = ""
    tier: str = ""
    content: list[ContentBlock] = Field(default_factory=list)
    stop_reason: StopReason = "end_turn"
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    cache_hit: bool = False
    routing: RoutingDecision | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    escalated: bool = False
    escalation_history: list[Attempt] = Field(default_factory=list)
    final_resolution: str | None = None

    @property
    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    @property
    def thinking(self) -> str:
        return "".join(b.thinking for b in self.content if isinstance(b, ThinkingBlock))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [
            ToolCall(id=b.id, name=b.name, arguments=b.input)
            for b in self.content
            if isinstance(b, ToolUseBlock)
        ]


# ---------------------------------------------------------------- streaming
class RouteChunk(_Model):
    """First chunk the pipeline yields: where the stream is coming from (never from a provider)."""

    type: Literal["route"] = "route"
    provider: str
    model: str
    tier: str
    cache_hit: bool = False
    request_id: str | None = None


class TextDelta(_Model):
    type: Literal["text_delta"] = "text_delta"
    text: str


class ThinkingDelta(_Model):
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str
    #: The upstream's signature over the thinking block (Anthropic), sent once, on a delta that
    #: closes the block; replaying the thinking in a later turn needs it. None elsewhere.
    signature: str | None = None


class ToolCallDelta(_Model):
    """A piece of a tool call. `id`/`name` arrive on the first delta of an index."""

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: int = 0
    id: str | None = None
    name: str | None = None
    arguments_delta: str = ""


class UsageChunk(_Model):
    type: Literal["usage"] = "usage"
    usage: Usage


class DoneChunk(_Model):
    type: Literal["done"] = "done"
    stop_reason: StopReason = "end_turn"
    #: The pipeline fills this with the assembled response; providers may leave it None.
    response: ChatResponse | None = None


class ErrorChunk(_Model):
    """A stream that broke after its first token ends with this, never silently."""

    type: Literal["error"] = "error"
    message: str
    kind: str = "unavailable"


StreamChunk = Annotated[
    RouteChunk | TextDelta | ThinkingDelta | ToolCallDelta | UsageChunk | DoneChunk | ErrorChunk,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------- embeddings and models
class EmbedRequest(_Model):
    input: list[str]
    model: str | None = None
    provider: str | None = None
    tier: str | None = None
    intent: Intent = Field(default_factory=Intent)
    caller: str | None = None
    request_id: str = Field(default_factory=new_id)


class EmbedResponse(_Model):
    embeddings: list[list[float]]
    model: str = ""
    provider: str = ""
    tier: str = ""
    usage: Usage = Field(default_factory=Usage)


class ModelInfo(_Model):
    """What the router knows about a model without calling anyone."""

    id: str
    provider: str = ""
    tier: str = "cloud"
    context_window: int = 8192
    max_output_tokens: int | None = None
    capabilities: set[str] = Field(default_factory=lambda: {"streaming"})
    #: USD per million tokens.
    input_price: float = 0.0
    output_price: float = 0.0
    #: Bytes of memory the model needs to load (discovery); None = unknown.
    memory_bytes: int | None = None
    #: Discovery: present on the provider (pulled/served). None = not checked.
    available: bool | None = None
    loaded: bool | None = None
    embedding: bool = False


class Health(_Model):
    ok: bool
    latency_ms: float | None = None
    detail: str = ""


def text_request(prompt: str, **kw: Any) -> ChatRequest:
    """Shorthand: a one-message user request."""
    return ChatRequest(messages=[Message(role="user", content=prompt)], **kw)


def join_text(chunks: Iterable[Any]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))
