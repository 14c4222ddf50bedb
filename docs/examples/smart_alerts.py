"""Smart alerts: a Legion extension that triages monitoring alerts with whatever LLM is available,
keeps a running incident digest, and offers a tool so a model (through the gateway) can look at
the current alerts.

Walked through in docs/writing-extensions.md; tested in tests/extensions/.

Install it like any plugin (entry point group `legion`)::

    [project.entry-points.legion]
    smart-alerts = "smart_alerts:plugin"
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from legion_core.extensions import LLMSession, llm_chat, llm_session
from legion_core.hookspecs import hookimpl
from legion_core.hooktypes import Extension, RequestContext
from legion_core.log import get_logger
from legion_core.types import ToolCall, ToolResult, ToolSpec

log = get_logger("smart_alerts")

SEVERITIES = ("critical", "warning", "info")
TRIAGE = ("Classify this monitoring alert as critical, warning or info, and summarize it in one "
          "short sentence. Answer exactly as `<severity>: <summary>`.\n\nAlert: {alert}")
DIGEST_SYSTEM = "You keep an incident digest for the on-call engineer: at most three short lines."

LIST_ALERTS = ToolSpec(
    name="list_alerts",
    description="The alerts triaged so far, newest first, optionally only one severity.",
    parameters={"type": "object",
                "properties": {"severity": {"type": "string", "enum": list(SEVERITIES)},
                               "limit": {"type": "integer", "minimum": 1, "maximum": 50}}},
    side_effects=False,  # read-only: an answer built on it may be cached
)


@dataclass
class Alert:
    id: int
    source: str
    raw: str
    severity: str = "info"
    summary: str = ""


def parse_triage(text: str) -> tuple[str, str]:
    """`critical: disk full` -> ("critical", "disk full"); anything unexpected is a warning."""
    head, sep, tail = text.strip().partition(":")
    sev = head.strip().strip("`*").lower()
    if sep and sev in SEVERITIES:
        return sev, tail.strip()
    return "warning", text.strip()


class SmartAlerts(Extension):
    """The runner: alerts go into a queue; a background task triages them one by one."""

    name: ClassVar[str] = "smart-alerts"
    llm_required: ClassVar[bool] = True  # without an LLM there is nothing to triage with

    def __init__(self) -> None:
        self.legion: Any = None
        self.alerts: list[Alert] = []
        self.digest: LLMSession | None = None
        self._queue: asyncio.Queue[Alert] | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_id = 1

    # -------------------------------------------------------------- lifecycle
    async def start(self, legion: Any) -> None:
        self.legion = legion
        self.digest = llm_session(legion, system=DIGEST_SYSTEM, caller=self.name, max_tokens=200)
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="smart-alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -------------------------------------------------------------- the runner
    def submit(self, source: str, raw: str) -> Alert:
        """Queue an alert (from a webhook, a log tail...); triage happens in the background."""
        if self._queue is None:
            raise RuntimeError("smart-alerts is not started (was it skipped for lack of an LLM?)")
        alert = Alert(id=self._next_id, source=source, raw=raw)
        self._next_id += 1
        self._queue.put_nowait(alert)
        return alert

    async def drain(self) -> None:
        """Wait until every submitted alert has been triaged (tests, graceful shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            alert = await self._queue.get()
            try:
                await self.triage(alert)
            except Exception as e:  # noqa: BLE001 - one bad alert must not stop the runner
                log.warning("alert triage failed", alert=alert.id, error=str(e))
            finally:
                self._queue.task_done()

    async def triage(self, alert: Alert) -> Alert:
        # One routed call: a short classification is "basic" work, so it goes to the cheapest tier.
        resp = await llm_chat(self.legion, TRIAGE.format(alert=alert.raw), caller=self.name,
                              max_tokens=60, intent={"capability": "basic"})
        alert.severity, alert.summary = parse_triage(resp.text)
        self.alerts.append(alert)
        if alert.severity != "info" and self.digest is not None:
            # A conversation: the model sees every earlier update when it rewrites the digest.
            await self.digest.say(f"New {alert.severity} alert from {alert.source}: {alert.summary}. "
                                  "Rewrite the digest.")
        return alert

    # -------------------------------------------------------------- the tool
    def list_alerts(self, severity: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        rows = [a for a in reversed(self.alerts) if severity is None or a.severity == severity]
        return [asdict(a) for a in rows[:limit]]


class SmartAlertsPlugin:
    """The hook implementations: the extension itself, and its tool."""

    def __init__(self) -> None:
        self.extension = SmartAlerts()

    @hookimpl
    def legion_register_extensions(self, register: Callable[[Extension], None]) -> None:
        register(self.extension)

    @hookimpl
    def legion_register_tools(self, register: Callable[[ToolSpec], None]) -> None:
        register(LIST_ALERTS)

    @hookimpl
    def legion_dispatch_tool(self, call: ToolCall, context: RequestContext) -> ToolResult | None:
        if call.name != LIST_ALERTS.name:
            return None  # not ours: let another dispatcher (or the caller) handle it
        severity = call.arguments.get("severity")
        if severity is not None and severity not in SEVERITIES:
            return ToolResult(tool_use_id=call.id, is_error=True,
                              content=f"severity must be one of {', '.join(SEVERITIES)}")
        limit = call.arguments.get("limit", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 50:
            return ToolResult(tool_use_id=call.id, is_error=True, content="limit must be an integer 1..50")
        return ToolResult(tool_use_id=call.id,
                          content=json.dumps(self.extension.list_alerts(severity, limit)))


plugin = SmartAlertsPlugin()
