"""The vocabulary shared by the conformance suite and every fake upstream.

The suite says *what* should go wrong (`fake.fail_with("rate_limited")`); each fake decides
*how* its upstream says so on the wire (an OpenAI error object, an Anthropic `overloaded_error`,
an Ollama `{"error": ...}`...). Kept free of pytest so fakes and benches can import it.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Error kinds every fake understands in `fail_with(kind)`, and the upstream behaviour expected.
ERROR_KINDS: dict[str, str] = {
    "auth": "401 with the upstream's authentication error body",
    "rate_limited": "429 with the upstream's rate-limit body and `Retry-After: RETRY_AFTER_SECONDS`",
    "context_overflow": "400 with the upstream's 'prompt too long' body",
    "content_policy": "400 with the upstream's content-policy refusal body",
    "server_error": "500 with the upstream's internal error body",
    "unavailable": "503 with the upstream's overloaded/unavailable body",
    "bad_request": "400 with the upstream's invalid-request body",
    "timeout": "a normal answer, but only after SLOW_SECONDS (beyond the provider's read timeout)",
}
#: Stream faults in `fail_with(kind)`.
STREAM_FAULTS: dict[str, str] = {
    "drop_before_first": "the response starts, then the connection drops before any token",
    "drop_mid_stream": "at least one text token is sent, then the connection drops",
}
#: The Retry-After (seconds) fakes send with `rate_limited`.
RETRY_AFTER_SECONDS = 7
#: How long a fake stalls for `timeout`; the suite sets the provider's read timeout well below it.
SLOW_SECONDS = 2.0
#: The read timeout the suite gives a provider for the `timeout` test.
SUITE_READ_TIMEOUT = 0.3
#: The tool-call arguments a scripted fake answers with (unless a test sets `fake.tool_arguments`).
DEFAULT_TOOL_ARGUMENTS: dict[str, Any] = {"city": "Paris", "unit": "celsius"}
#: Token counts a scripted fake reports (prompt, completion) unless a test changes `fake.usage`.
DEFAULT_USAGE: tuple[int, int] = (12, 7)


async def sleep_unless_gone(request: Any, seconds: float, step: float = 0.05) -> bool:
    """Sleep up to `seconds`, returning early (False) once the client has hung up.

    aiohttp no longer cancels handlers when a client disconnects; a fake that stalls must
    notice by itself, or server shutdown waits for it.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        await asyncio.sleep(min(step, max(0.0, end - loop.time())))
    return True
