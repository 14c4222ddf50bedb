"""`providers.http.transport_error`: the one mapping of connection-level failures for every
provider (OpenAI-compatible, vLLM, Anthropic, Ollama, Bedrock), as aiohttp (the hot path) and
httpx over httpx-aiohttp (off it) raise them."""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import TransferEncodingError

from legion_core.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from legion_core.providers.http import transport_error


def caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


KEY = ConnectionKey("127.0.0.1", 9, False, True, None, None, None, "127.0.0.1")
REFUSED = ConnectionRefusedError(111, "Connection refused")


def _failures() -> list[Any]:
    return [
        # aiohttp, as Pool.post and a streamed body raise them
        pytest.param(caused(aiohttp.ClientConnectorError(KEY, REFUSED), REFUSED), ProviderUnavailable, id="refused"),
        pytest.param(aiohttp.ServerTimeoutError("Timeout on reading data"), ProviderTimeout, id="server-timeout"),
        pytest.param(aiohttp.SocketTimeoutError("Timeout on reading data"), ProviderTimeout, id="socket-timeout"),
        pytest.param(caused(aiohttp.ConnectionTimeoutError("Connection timeout"), TimeoutError()), ProviderTimeout,
                     id="connect-timeout"),
        pytest.param(TimeoutError(), ProviderTimeout, id="timeout"),
        pytest.param(aiohttp.ServerDisconnectedError(), ProviderUnavailable, id="disconnected"),
        pytest.param(caused(aiohttp.ClientPayloadError("Response payload is not completed"),
                            TransferEncodingError("Not enough data")), ProviderUnavailable, id="payload"),
        pytest.param(aiohttp.ClientOSError(104, "Connection reset by peer"), ProviderUnavailable, id="reset"),
        # httpx over httpx-aiohttp: every aiohttp connection error arrives as ConnectTimeout
        pytest.param(caused(httpx.ConnectTimeout("refused"), caused(aiohttp.ClientConnectorError(KEY, REFUSED),
                                                                    REFUSED)),
                     ProviderUnavailable, id="httpx-refused"),
        pytest.param(caused(httpx.ConnectTimeout("closed"), aiohttp.ClientConnectionError("closed")),
                     ProviderUnavailable, id="httpx-connection-error"),
        pytest.param(caused(httpx.ReadTimeout("slow"), aiohttp.SocketTimeoutError("slow")), ProviderTimeout,
                     id="httpx-read-timeout"),
        pytest.param(httpx.PoolTimeout("pool"), ProviderTimeout, id="httpx-pool-timeout"),
        pytest.param(httpx.ConnectError("refused"), ProviderUnavailable, id="httpx-connect-error"),
        pytest.param(httpx.RemoteProtocolError("bad"), ProviderUnavailable, id="httpx-protocol"),
    ]


@pytest.mark.parametrize(("exc", "expected"), _failures())
def test_transport_failures_are_typed_and_fail_over(exc: BaseException, expected: type[ProviderError]) -> None:
    err = transport_error(exc, "up", "http://127.0.0.1:9")
    assert type(err) is expected and err.failover and err.provider == "up"
    assert "http://127.0.0.1:9" in str(err)


def test_the_message_names_the_root_cause_and_leaves_the_url_out_when_not_given() -> None:
    err = transport_error(caused(aiohttp.ClientConnectorError(KEY, REFUSED), REFUSED), "up")
    assert str(err) == "up: upstream unreachable (ConnectionRefusedError)"
    assert str(transport_error(TimeoutError(), "up")) == "up: upstream timed out"
