"""The lean HTTP/1.1 client (`providers.http1`) against a real loopback server that writes
exact bytes (`testing.fakes.raw`): body framings, keep-alive, limits, failures, cancellation."""

from __future__ import annotations

import asyncio
import gzip
import zlib

import pytest

from legion_core.errors import ProviderTimeout, ProviderUnavailable
from legion_core.providers.http import TRANSPORT_ERRORS, transport_error
from legion_core.providers.http1 import Http1Pool, MalformedResponse, ReadTimeout, UpstreamClosed
from legion_core.testing.fakes.raw import RawHTTPServer, Reply, answer

BODY = b'{"model": "m", "messages": []}'


async def client_gone(server: RawHTTPServer, seconds: float = 1.0) -> None:
    """Wait (a little) for the server to see its client close the connection."""
    for _ in range(int(seconds / 0.02)):
        if server.client_closed:
            return
        await asyncio.sleep(0.02)


@pytest.fixture
def server():
    with RawHTTPServer() as s:
        yield s


async def test_post_sends_the_request_and_reads_a_content_length_answer(server):
    pool = Http1Pool(server.url + "/v1/", {"Authorization": "Bearer k"})
    status, headers, raw = await pool.post("/chat/completions", BODY)
    assert (status, raw) == (200, b'{"ok": true}')
    assert headers["content-type"] == "application/json"  # case-insensitive
    seen = server.requests[0]
    assert seen.request_line == "POST /v1/chat/completions HTTP/1.1"
    assert seen.body == BODY
    assert seen.header("host") == [f"127.0.0.1:{server.port}"]
    assert seen.header("authorization") == ["Bearer k"]
    assert seen.header("content-length") == [str(len(BODY))]
    assert seen.header("content-type") == ["application/json"]
    await pool.aclose()


@pytest.mark.parametrize("framing", ["chunked", "close-delimited"])
async def test_other_body_framings(server, framing):
    big = b'{"text": "' + b"x" * 70_000 + b'"}'
    if framing == "chunked":
        server.queue(Reply(answer(big, chunked=True)))
    else:
        server.queue(Reply(answer(big, length=False), close=True))
    pool = Http1Pool(server.url)
    status, _, raw = await pool.post("/p", BODY)
    assert (status, raw) == (200, big)
    status, _, raw = await pool.post("/p", BODY)  # and the pool goes on (reused or reconnected)
    assert status == 200
    assert server.accepted == (1 if framing == "chunked" else 2)
    await pool.aclose()


async def test_sequential_calls_reuse_one_connection_and_concurrent_ones_respect_the_limit(server):
    server.queue(*[Reply(answer(), delay=0.05) for _ in range(6)])
    pool = Http1Pool(server.url, limit=2)
    for _ in range(3):
        await pool.post("/p", BODY)
    assert server.accepted == 1
    results = await asyncio.gather(*[pool.post("/p", BODY) for _ in range(6)])
    assert [r[0] for r in results] == [200] * 6
    assert server.accepted <= 2 and pool.open_connections <= 2
    await pool.aclose()


async def test_per_call_headers_replace_the_pools_own(server):
    pool = Http1Pool(server.url, {"Authorization": "Bearer configured", "X-A": "1"})
    await pool.post("/p", BODY, {"authorization": "Bearer passed-through", "X-B": "2"})
    seen = server.requests[0]
    assert seen.header("authorization") == ["Bearer passed-through"]
    assert seen.header("x-a") == ["1"] and seen.header("x-b") == ["2"]
    with pytest.raises(ValueError, match="not allow"):
        await pool.post("/p", BODY, {"X-Evil": "a\r\nInjected: yes"})
    assert len(server.requests) == 1
    await pool.aclose()


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_answers_are_decoded(server, encoding):
    plain = b'{"text": "Wednesday"}'
    packed = gzip.compress(plain) if encoding == "gzip" else zlib.compress(plain)
    server.queue(Reply(answer(packed, headers={"Content-Encoding": encoding})))
    pool = Http1Pool(server.url)
    assert (await pool.post("/p", BODY))[2] == plain
    assert server.requests[0].header("accept-encoding") == ["identity"]
    await pool.aclose()


async def test_raw_deflate_is_read_and_an_unknown_encoding_is_a_malformed_answer(server):
    plain = b'{"text": "Wednesday"}'
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # deflate without the zlib header, as some servers send
    server.queue(Reply(answer(z.compress(plain) + z.flush(), headers={"Content-Encoding": "deflate"})),
                 Reply(answer(b"\x00\x01", headers={"Content-Encoding": "br"})))
    pool = Http1Pool(server.url)
    assert (await pool.post("/p", BODY))[2] == plain
    with pytest.raises(MalformedResponse, match="br"):
        await pool.post("/p", BODY)
    await pool.aclose()


async def test_an_interim_100_answer_is_skipped(server):
    server.queue(Reply(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'{"n": 1}')))
    pool = Http1Pool(server.url)
    assert (await pool.post("/p", BODY))[:3:2] == (200, b'{"n": 1}')
    await pool.aclose()


async def test_error_statuses_come_back_with_their_headers(server):
    server.queue(Reply(answer(b'{"error": {"message": "slow down"}}', 429, {"Retry-After": "7"})))
    pool = Http1Pool(server.url)
    status, headers, raw = await pool.post("/p", BODY)
    assert status == 429 and headers.get("retry-after") == "7" and b"slow down" in raw
    await pool.aclose()


async def test_connection_close_is_honoured(server):
    server.queue(Reply(answer(headers={"Connection": "close"})))
    pool = Http1Pool(server.url)
    await pool.post("/p", BODY)
    await pool.post("/p", BODY)
    assert server.accepted == 2
    await pool.aclose()


async def test_an_idle_connection_the_server_closed_is_replaced_without_an_error(server):
    pool = Http1Pool(server.url)
    await pool.post("/p", BODY)
    server.close_idle()
    await asyncio.sleep(0.05)
    status, _, _ = await pool.post("/p", BODY)
    assert status == 200 and server.accepted == 2
    await pool.aclose()


async def test_a_body_cut_short_is_a_broken_connection(server):
    server.queue(Reply(b'HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n{"text": "Wednes', close=True))
    pool = Http1Pool(server.url)
    with pytest.raises(UpstreamClosed) as e:
        await pool.post("/p", BODY)
    assert isinstance(transport_error(e.value, "up"), ProviderUnavailable)
    assert (await pool.post("/p", BODY))[0] == 200  # the pool recovers
    await pool.aclose()


async def test_garbage_is_a_malformed_response(server):
    server.queue(Reply(b"SPDY/9 what\r\n\r\n", close=True))
    pool = Http1Pool(server.url)
    with pytest.raises(MalformedResponse):
        await pool.post("/p", BODY)
    await pool.aclose()


async def test_a_stalled_upstream_hits_the_read_timeout_and_the_connection_is_closed(server):
    server.queue(Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{", stall=True))
    pool = Http1Pool(server.url, read_timeout=0.2)
    with pytest.raises(ReadTimeout) as e:
        await pool.post("/p", BODY)
    assert isinstance(e.value, TRANSPORT_ERRORS)
    assert isinstance(transport_error(e.value, "up"), ProviderTimeout)
    await client_gone(server)
    assert server.client_closed == 1
    await pool.aclose()


async def test_a_slow_but_steady_answer_is_not_a_read_timeout(server):
    server.queue(Reply(answer(), delay=0.15))
    pool = Http1Pool(server.url, read_timeout=0.1)
    with pytest.raises(ReadTimeout):  # nothing at all for longer than the read timeout
        await pool.post("/p", BODY)
    pool2 = Http1Pool(server.url, read_timeout=2.0)
    server.queue(Reply(answer(), delay=0.15))
    assert (await pool2.post("/p", BODY))[0] == 200
    await pool.aclose()
    await pool2.aclose()


async def test_cancelling_a_call_closes_its_connection(server):
    """How an upstream generation is cancelled: the upstream sees its client go."""
    server.queue(Reply(b"", stall=True))
    pool = Http1Pool(server.url)
    task = asyncio.ensure_future(pool.post("/p", BODY))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await client_gone(server)
    assert server.client_closed == 1 and pool.open_connections == 0
    assert (await pool.post("/p", BODY))[0] == 200
    await pool.aclose()


async def test_a_refused_connection_is_a_transport_error():
    from legion_core.testing.fakes.base import _free_port

    pool = Http1Pool(f"http://127.0.0.1:{_free_port('127.0.0.1')}")
    with pytest.raises(TRANSPORT_ERRORS) as e:
        await pool.post("/p", BODY)
    assert isinstance(transport_error(e.value, "up"), ProviderUnavailable)
    assert pool.open_connections == 0


def test_only_http_urls():
    async def make() -> None:
        Http1Pool("ftp://example.com")

    with pytest.raises(TRANSPORT_ERRORS, match="http"):  # a misconfigured provider is unavailable
        asyncio.run(make())


async def test_a_reused_connection_dropped_before_any_answer_is_retried_once_on_a_new_one(server):
    """The race keep-alive clients know: the server closed an idle connection just as the
    request went out. Nothing came back, so the request is sent again, once, on a new one."""
    pool = Http1Pool(server.url)
    await pool.post("/p", BODY)
    server.queue(Reply(b"", close=True))
    status, _, _ = await pool.post("/p", BODY)
    assert status == 200 and server.accepted == 2 and len(server.requests) == 3
    # on a fresh connection the same silence is the upstream's failure, not a stale connection
    server.queue(Reply(b"", close=True), Reply(b"", close=True))
    await pool.aclose()
    pool = Http1Pool(server.url)
    with pytest.raises(UpstreamClosed):
        await pool.post("/p", BODY)
    await pool.aclose()


# ------------------------------------------------------------------ streamed answers
from legion_core.testing.fakes.raw import chunk, sse_head  # noqa: E402

EV1, EV2 = b'data: {"n": 1}\n\n', b'data: {"n": 2}\n\ndata: [DONE]\n\n'


async def test_a_stream_delivers_each_event_as_it_arrives_and_then_reuses_the_connection(server):
    server.queue(Reply(sse_head() + chunk(EV1), then=[(0.6, chunk(EV2) + chunk(b""))]))
    pool = Http1Pool(server.url)
    resp = await pool.stream("/p", BODY)
    assert resp.status == 200 and resp.headers["content-type"] == "text/event-stream"
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    first = await resp.content.readany()
    assert first == EV1 and loop.time() - t0 < 0.4, "the first event waited for the rest"
    rest = b"".join([c async for c in resp.content.iter_any()])
    assert rest == EV2 and resp.content.at_eof()
    resp.release()
    assert (await pool.post("/p", BODY))[0] == 200
    assert server.accepted == 1, "a stream read to its end gives its connection back"
    await pool.aclose()


async def test_a_stream_released_early_closes_its_connection(server):
    """How an abandoned generation is cancelled upstream."""
    server.queue(Reply(sse_head() + chunk(EV1), stall=True))
    pool = Http1Pool(server.url)
    resp = await pool.stream("/p", BODY)
    assert await resp.content.readany() == EV1
    resp.release()
    await client_gone(server)
    assert server.client_closed == 1 and pool.open_connections == 0
    assert (await pool.post("/p", BODY))[0] == 200
    await pool.aclose()


async def test_an_error_answer_to_a_stream_is_read_whole(server):
    server.queue(Reply(answer(b'{"error": {"message": "no such model"}}', 404)))
    pool = Http1Pool(server.url)
    resp = await pool.stream("/p", BODY)
    assert resp.status == 404 and b"no such model" in await resp.read()
    resp.release()
    await pool.aclose()


async def test_a_stream_cut_short_raises_to_its_reader(server):
    server.queue(Reply(sse_head() + chunk(EV1), close=True))
    pool = Http1Pool(server.url)
    resp = await pool.stream("/p", BODY)
    assert await resp.content.readany() == EV1
    with pytest.raises(UpstreamClosed):
        await resp.content.readany()
    resp.release()
    await pool.aclose()


async def test_a_stalled_stream_hits_the_read_timeout(server):
    server.queue(Reply(sse_head() + chunk(EV1), stall=True))
    pool = Http1Pool(server.url, read_timeout=0.2)
    resp = await pool.stream("/p", BODY)
    assert await resp.content.readany() == EV1
    with pytest.raises(ReadTimeout):
        await resp.content.readany()
    resp.release()
    await pool.aclose()


async def test_a_slow_reader_pauses_the_upstream_instead_of_buffering_everything(server):
    from legion_core.providers import http1

    block = b"x" * 65536
    server.queue(Reply(sse_head() + b"".join(chunk(block) for _ in range(32)) + chunk(b"")))
    pool = Http1Pool(server.url, read_timeout=0.2)
    resp = await pool.stream("/p", BODY)
    await asyncio.sleep(0.5)  # not reading, longer than the read timeout: no timeout either
    conn = resp._conn
    assert conn is not None and conn.paused
    # past the high-water mark at most one more read of the transport (asyncio reads 256 KiB)
    assert conn.buffered <= http1.HIGH_WATER + 256 * 1024 + 8192 < len(block) * 32 // 2
    got = b"".join([c async for c in resp.content.iter_any()])
    assert got == block * 32
    resp.release()
    await pool.aclose()


async def test_a_gzipped_stream_is_decoded_incrementally(server):
    z = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    part1 = z.compress(EV1) + z.flush(zlib.Z_SYNC_FLUSH)
    part2 = z.compress(EV2) + z.flush()
    head = sse_head().replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n", 1)
    server.queue(Reply(head + chunk(part1), then=[(0.05, chunk(part2) + chunk(b""))]))
    pool = Http1Pool(server.url)
    resp = await pool.stream("/p", BODY)
    assert await resp.content.readany() == EV1
    assert await resp.read() == EV2
    resp.release()
    await pool.aclose()


# ------------------------------------------------------------------ TLS
@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


async def test_https_upstreams_are_verified_and_their_connections_reused(cert):
    import ssl

    certfile, keyfile = cert
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certfile, keyfile)
    with RawHTTPServer(tls=server_ctx) as server:
        assert server.url.startswith("https://")
        trusting = ssl.create_default_context(cafile=str(certfile))
        pool = Http1Pool(server.url, ssl_context=trusting)
        for _ in range(3):
            assert (await pool.post("/p", BODY))[0] == 200
        assert server.accepted == 1, "one TLS handshake for three calls"
        await pool.aclose()
        # the default context trusts the system's CAs only: a self-signed upstream is refused
        strict = Http1Pool(server.url)
        with pytest.raises(TRANSPORT_ERRORS) as e:
            await strict.post("/p", BODY)
        assert isinstance(e.value, ssl.SSLCertVerificationError)
        assert isinstance(transport_error(e.value, "up"), ProviderUnavailable)
        await strict.aclose()


async def test_the_host_header_names_a_port_only_when_it_is_not_the_schemes_default():
    """SigV4 signs the host without a default port; a Host with one would not match it."""
    def host(url: str) -> str:
        head = Http1Pool(url)._head("/p", None, 0).decode()
        return next(ln for ln in head.split("\r\n") if ln.startswith("Host: "))

    assert host("http://example.com:80") == "Host: example.com"
    assert host("https://example.com:443/v1") == "Host: example.com"
    assert host("https://example.com:8443") == "Host: example.com:8443"
    assert host("http://[::1]:8080") == "Host: [::1]:8080"
