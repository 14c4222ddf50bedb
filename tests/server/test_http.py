"""The gateway over plain HTTP (httpx): headers, bad input, auth, native API, operations."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from legion_core.errors import RequestRefused
from legion_core.hookspecs import hookimpl
from legion_core.server import ServerThread, UnsafeBindError, check_bind, create_app
from tests.server.conftest import make_legion

CHAT = "/v1/chat/completions"


def msg(text="hi", **kw):
    return {"model": "legion/auto", "messages": [{"role": "user", "content": text}], **kw}


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, timeout=20) as c:
        yield c


# ------------------------------------------------------------------ routing headers and hints
def test_every_routed_response_says_how_it_was_routed(http):
    for path, body in ((CHAT, msg()), ("/v1/messages", {**msg(), "max_tokens": 5}),
                       ("/api/llm/chat", {"messages": [{"role": "user", "content": "hi"}]})):
        r = http.post(path, json=body)
        assert r.status_code == 200, r.text
        for h in ("x-legion-provider", "x-legion-model", "x-legion-tier", "x-legion-cache",
                  "x-legion-overhead-ms", "x-request-id"):
            assert r.headers.get(h), (path, h)


def test_cache_hit_then_no_cache_bypass(http, rec):
    body = msg("cache me")
    assert http.post(CHAT, json=body).headers["x-legion-cache"] == "miss"
    hit = http.post(CHAT, json=body)
    assert hit.headers["x-legion-cache"] == "hit"
    assert hit.json()["choices"][0]["message"]["content"] == "echo: cache me"
    calls = len(rec.requests)
    bypass = http.post(CHAT, json=body, headers={"cache-control": "no-cache"})
    assert bypass.headers["x-legion-cache"] == "bypass"
    assert len(rec.requests) == calls + 1


def test_request_id_is_propagated(http):
    r = http.post(CHAT, json=msg(), headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    # an id with odd characters is replaced, not echoed
    r2 = http.post(CHAT, json=msg(), headers={"x-request-id": "bad id\twith spaces"})
    assert r2.headers["x-request-id"].startswith("req_")


def test_intent_header_and_body_field_reach_the_router(http, rec):
    http.post(CHAT, json=msg("a"), headers={"x-legion-intent": "privacy=strict, capability=reasoning"})
    seen = rec.requests[-1][2]
    assert seen.intent.privacy == "strict" and seen.intent.capability == "reasoning"
    http.post(CHAT, json=msg("b", legion={"intent": {"cost": "minimize"}, "provider": "gw", "cache": False}))
    seen = rec.requests[-1][2]
    assert seen.intent.cost == "minimize" and seen.cache is False


def test_alias_routes_like_a_model(serve_legion):
    st = serve_legion(routing={"aliases": {"fast": {"tier": "local"}}})
    r = httpx.post(st.url + CHAT, json={**msg(), "model": "fast"})
    assert r.status_code == 200 and r.headers["x-legion-tier"] == "local"
    ids = [m["id"] for m in httpx.get(st.url + "/v1/models").json()["data"]]
    assert "fast" in ids


AUTO_NAMES = ["legion/auto", "auto", "default", "legion", "legion-auto", "Legion/Auto", " DEFAULT "]


@pytest.mark.parametrize("name", AUTO_NAMES)
def test_every_auto_model_name_routes_in_every_dialect(http, rec, name):
    text = [{"role": "user", "content": "hi"}]
    calls = [
        (CHAT, {"model": name, "messages": text}, {}),
        ("/v1/messages", {"model": name, "messages": text, "max_tokens": 5}, {"anthropic-version": "2023-06-01"}),
        ("/api/llm/chat", {"model": name, "messages": text}, {}),
        ("/v1/embeddings", {"model": name, "input": ["hi"]}, {}),
    ]
    for path, body, headers in calls:
        r = http.post(path, json=body, headers={"cache-control": "no-cache", **headers})
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-legion-provider"] == "gw", path
    assert len(rec.requests) == 3 and all(req.model is None for _, _, req in rec.requests)
    got = http.get(f"/v1/models/{name.strip()}")
    assert got.status_code == 200 and got.json()["owned_by"] == "legion"


def test_models_list_advertises_only_legion_auto(http):
    ids = [m["id"] for m in http.get("/v1/models").json()["data"]]
    assert ids[0] == "legion/auto" and "gw-model" in ids
    assert not {"auto", "default", "legion", "legion-auto"} & set(ids)


@pytest.mark.parametrize("stream", [False, True])
def test_a_request_no_model_can_hold_is_a_400_in_the_callers_dialect(http, rec, stream):
    text = [{"role": "user", "content": "hi"}]
    big = 200_000  # gw-model's window is 100000
    oa = http.post(CHAT, json={"model": "default", "messages": text, "max_tokens": big, "stream": stream})
    assert oa.status_code == 400, oa.text
    err = oa.json()["error"]
    assert (err["type"], err["code"]) == ("invalid_request_error", "context_overflow")
    assert "largest context window is 100000" in err["message"]
    an = http.post("/v1/messages", json={"model": "legion/auto", "messages": text, "max_tokens": big,
                                         "stream": stream}, headers={"anthropic-version": "2023-06-01"})
    assert an.status_code == 400, an.text
    assert an.json()["type"] == "error" and an.json()["error"]["type"] == "invalid_request_error"
    assert "context window" in an.json()["error"]["message"]
    native = http.post("/api/llm/inference" if stream else "/api/llm/chat",
                       json={"messages": text, "max_tokens": big})
    assert native.status_code == 400, native.text
    nerr = native.json()["error"]
    assert nerr["kind"] == "context_overflow" and nerr["decision"]["candidates"][0]["dropped"]
    assert rec.requests == []  # no provider was called


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(("path", "body", "status", "needle"), [
    (CHAT, b"{not json", 400, "malformed JSON"),
    (CHAT, b"[1, 2]", 400, "JSON object"),
    (CHAT, b"", 400, "empty"),
    (CHAT, json.dumps({"model": "legion/auto", "messages": "hi"}).encode(), 400, "messages"),
    (CHAT, json.dumps({"model": "legion/auto", "messages": [{"role": "user", "content": 5}]}).encode(),
     400, "messages.0"),
    (CHAT, json.dumps({**msg(), "temperature": "hot"}).encode(), 400, "temperature"),
    (CHAT, json.dumps({**msg(), "frobnicate": 1}).encode(), 400, "frobnicate: unknown or unsupported"),
    (CHAT, json.dumps({**msg(), "logprobs": True}).encode(), 400, "logprobs"),
    (CHAT, json.dumps({**msg(), "model": "nope"}).encode(), 404, "GET /v1/models"),
    (CHAT, json.dumps({**msg(), "legion": {"provider": "nope"}}).encode(), 400, "configured: gw"),
    (CHAT, json.dumps({**msg(), "legion": {"tier": "moon"}}).encode(), 400, "unknown tier"),
    ("/v1/messages", json.dumps(msg()).encode(), 400, "max_tokens: required field is missing"),
    ("/v1/embeddings", json.dumps({"model": "legion/auto", "input": [[1, 2]]}).encode(), 400, "token arrays"),
    ("/api/llm/chat", json.dumps({"messages": [{"role": "robot", "content": "x"}]}).encode(), 400, "role"),
])
def test_bad_input_is_4xx_naming_what_to_fix(http, path, body, status, needle):
    r = http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.text
    if path == "/v1/messages":
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"
    elif path.startswith("/v1/"):
        assert "message" in r.json()["error"] and "type" in r.json()["error"]
    else:
        assert r.json()["error"]["status"] == status


def test_bad_intent_header(http):
    r = http.post(CHAT, json=msg(), headers={"x-legion-intent": "privacy=loose"})
    assert r.status_code == 400
    assert "privacy must be one of normal, strict" in r.json()["error"]["message"]


def test_oversized_body_is_413(serve_legion):
    st = serve_legion(api={"max_body_bytes": 2000})
    big = msg("x" * 5000)
    r = httpx.post(st.url + CHAT, json=big)
    assert r.status_code == 413
    assert "llm.api.max_body_bytes" in r.json()["error"]["message"]
    # chunked upload (no content-length) is cut off too
    r2 = httpx.post(st.url + "/v1/messages", content=iter([json.dumps({**big, "max_tokens": 5}).encode()]))
    assert r2.status_code == 413 and r2.json()["error"]["type"] == "request_too_large"
    assert httpx.post(st.url + CHAT, json=msg("small")).status_code == 200


def test_unknown_path_and_method_are_json_errors(http):
    r = http.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = http.get(CHAT)
    assert r.status_code == 405 and "not allowed" in r.json()["error"]["message"]


# ------------------------------------------------------------------ failures and guards
class RefuseGuard:
    @hookimpl
    def legion_before_chat(self, request, context):
        text = request.last_user_text()
        if text == "over budget":
            raise RequestRefused("daily budget spent", status=429, retry_after=30)
        if text == "guard bug":
            raise RuntimeError("secret-ish internal detail")
        return None


@pytest.fixture
def guarded(tmp_path, serve_legion):
    return serve_legion(legion=make_legion(tmp_path / "g", extra_plugins=(RefuseGuard(),)))


def test_refusal_maps_to_status_and_retry_after(guarded):
    r = httpx.post(guarded.url + CHAT, json=msg("over budget"))
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert r.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize(("path", "extra"), [(CHAT, {}), ("/v1/messages", {"max_tokens": 5}),
                                             ("/api/llm/chat", {})])
def test_unexpected_exception_is_a_dialect_500_with_request_id(guarded, path, extra):
    body = {"messages": [{"role": "user", "content": "guard bug"}], **extra}
    if path != "/api/llm/chat":
        body["model"] = "legion/auto"
    r = httpx.post(guarded.url + path, json=body, headers={"x-request-id": "rid-500"})
    assert r.status_code == 500
    assert "rid-500" in r.text and "secret-ish" not in r.text
    data = r.json()
    if path == "/v1/messages":
        assert data["error"]["type"] == "api_error"
    elif path == CHAT:
        assert data["error"]["code"] == "internal_error"
    else:
        assert data["error"]["request_id"] == "rid-500"


def test_failed_requests_are_audited(gateway):
    from legion_core.store.db import Store

    rid = "audit-me-1"
    r = httpx.post(gateway.url + CHAT, json=msg("fail unavailable"), headers={"x-request-id": rid})
    assert r.status_code == 503
    lg = None
    # the app's Legion: reach it through the running app's state
    lg = gateway.server.config.app.state.gateway.legion
    lg.pipeline.writer.flush()
    store: Store = lg.store
    rows = list(store.db.query("select * from audit where request_id = ?", [rid])) \
        if "audit" in store.db.table_names() else []
    assert rows, f"no audit row for {rid}; tables: {store.db.table_names()}"


# ------------------------------------------------------------------ streaming
def test_native_inference_stream_events(http):
    tools = [{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}]
    with http.stream("POST", "/api/llm/inference",
                     json={"messages": [{"role": "user", "content": "use the tool"}], "tools": tools}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-legion-provider"] == "gw"
        events = [line.split(": ", 1)[1] for line in r.iter_lines() if line.startswith("event: ")]
    assert events[0] == "route"
    assert events[1:4] == ["tool-call-start", "tool-call-delta", "tool-call-delta"]
    assert "tool-call-end" in events and events[-1] == "done"
    with http.stream("POST", "/api/llm/inference",
                     json={"messages": [{"role": "user", "content": "think about it"}]}) as r:
        lines = list(r.iter_lines())
    events = [x[7:] for x in lines if x.startswith("event: ")]
    assert "thinking-delta" in events and "text-delta" in events and events[-1] == "done"
    done = json.loads(lines[lines.index("event: done") + 1][6:])
    assert done["response"]["provider"] == "gw" and done["response"]["routing"]["provider"] == "gw"


def test_client_disconnect_cancels_the_upstream(gateway, rec):
    with httpx.Client(base_url=gateway.url, timeout=20) as c:
        with c.stream("POST", CHAT, json=msg("slow", stream=True)) as r:
            it = r.iter_lines()
            got = [next(it) for _ in range(3)]
            assert any("content" in g for g in got)
    # the stream is closed after a few chunks: the provider's generator must be cancelled
    assert rec.cancelled.wait(10), "upstream stream was not cancelled"
    n = rec.slow_chunks
    assert n < 150
    time.sleep(0.3)
    assert rec.slow_chunks == n  # and nothing more is pulled from it


def test_stream_error_before_start_is_a_plain_error(http):
    r = http.post(CHAT, json=msg("fail unavailable", stream=True))
    assert r.status_code == 503
    assert r.headers["content-type"].startswith("application/json")


# ------------------------------------------------------------------ native API
def test_native_chat_round_trip_with_routing(http):
    r = http.post("/api/llm/chat", json={"messages": [{"role": "user", "content": "native"}],
                                         "request_id": "native-1"})
    data = r.json()
    assert r.status_code == 200
    assert data["content"][0]["text"] == "echo: native"
    assert data["routing"]["provider"] == "gw" and data["request_id"] == "native-1"
    assert r.headers["x-request-id"] == "native-1"


def test_native_chat_cannot_claim_system_profile_or_inject_a_token(http, rec):
    http.post("/api/llm/chat", json={"messages": [{"role": "user", "content": "x"}], "profile": "system"})
    assert rec.requests[-1][2].profile == "user"


def test_providers_and_models(http):
    p = http.get("/api/llm/providers").json()
    assert p["providers"][0]["name"] == "gw" and p["providers"][0]["circuit"] == "closed"
    one = http.get("/api/llm/providers/gw").json()
    assert one["models"][0]["id"] == "gw-model"
    assert http.get("/api/llm/providers/nope").status_code == 404
    models = http.get("/api/llm/models").json()["models"]
    assert {m["id"] for m in models} == {"gw-model", "gw-model-embed"}


# ------------------------------------------------------------------ auth
@pytest.fixture
def authed(serve_legion, monkeypatch):
    monkeypatch.setenv("GW_KEY_A", "sk-legion-aaaa")
    return serve_legion(api={"auth": {"enabled": True,
                                      "api_keys": ["env://GW_KEY_A", ["env://GW_UNSET", "sk-legion-bbbb"]]}})


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"authorization": "Bearer sk-wrong"}, 401),
    ({"authorization": "Basic sk-legion-aaaa"}, 401),
    ({"authorization": "Bearer sk-legion-aaaa"}, 200),
    ({"x-api-key": "sk-legion-bbbb"}, 200),
])
def test_auth(authed, headers, status):
    r = httpx.post(authed.url + CHAT, json=msg(), headers=headers)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.json()["error"]["type"] == "authentication_error"
        assert "sk-legion" not in r.text


def test_auth_applies_to_every_api_but_not_health(authed):
    for path in ("/v1/models", "/api/llm/providers", "/metrics"):
        assert httpx.get(authed.url + path).status_code == 401, path
    r = httpx.post(authed.url + "/v1/messages", json={**msg(), "max_tokens": 5})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert httpx.get(authed.url + "/health").status_code == 200
    assert httpx.get(authed.url + "/ready").status_code == 200


def test_authenticated_caller_is_the_key_id(authed, rec):
    httpx.post(authed.url + CHAT, json=msg(legion={"caller": "someone-else"}),
               headers={"authorization": "Bearer sk-legion-aaaa"})
    caller = rec.requests[-1][2].caller
    assert caller.startswith("key-") and "aaaa" not in caller


def test_unsafe_bind_is_refused_with_both_ways_out():
    check_bind("127.0.0.1", False, False)
    check_bind("::1", False, False)
    check_bind("0.0.0.0", True, False)
    check_bind("0.0.0.0", False, True)
    with pytest.raises(UnsafeBindError) as ei:
        check_bind("0.0.0.0", False, False)
    text = str(ei.value)
    assert "llm.api.auth.enabled" in text and "--allow-unauthenticated" in text


# ------------------------------------------------------------------ operations
def test_metrics_count_requests_tokens_cache_and_failovers(serve_legion):
    from tests.server.conftest import gw_provider

    st = serve_legion({"down": gw_provider(tier="local", model="m1", priority=10),
                       "up": gw_provider(tier="local", model="m2")})
    # `down` is preferred (priority) but fails: the request fails over to `up`
    r = httpx.post(st.url + CHAT, json=msg("fail@down unavailable"))
    assert r.status_code == 200 and r.headers["x-legion-provider"] == "up"
    httpx.post(st.url + CHAT, json=msg("count me"))
    httpx.post(st.url + CHAT, json=msg("count me"))
    text = httpx.get(st.url + "/metrics").text
    assert "# TYPE legion_requests_total counter" in text
    assert 'legion_cache_hits_total{provider="' in text
    assert 'legion_tokens_total{' in text and 'direction="input"' in text
    assert "legion_request_duration_seconds_bucket" in text
    assert 'legion_provider_up{provider="down"' in text
    assert 'legion_failovers_total{provider="down",model="m1",tier="local",kind="unavailable"} 1' in text


def test_plugin_gauges_appear_in_metrics(http):
    from legion_core.server.metrics import gauges

    gauges.set("legion_budget_used_ratio", 0.5, {"scope": "daily"}, help="Budget spent")
    try:
        text = http.get("/metrics").text
        assert "# TYPE legion_budget_used_ratio gauge" in text
        assert 'legion_budget_used_ratio{scope="daily"} 0.5' in text
    finally:
        gauges.remove("legion_budget_used_ratio")


def test_ready_is_503_until_boot_completes(tmp_path, rec):
    rec.boot_gate = threading.Event()
    lg = make_legion(tmp_path / "slow")
    with ServerThread(create_app(lg, background_boot=True)) as st:
        assert httpx.get(st.url + "/health").status_code == 200
        r = httpx.get(st.url + "/ready")
        assert r.status_code == 503 and r.json()["ready"] is False
        assert r.json()["subsystems"]["providers"] == "pending"
        blocked = httpx.post(st.url + CHAT, json=msg())
        assert blocked.status_code == 503 and blocked.headers["retry-after"] == "1"
        rec.boot_gate.set()
        for _ in range(200):
            if httpx.get(st.url + "/ready").status_code == 200:
                break
            time.sleep(0.05)
        assert httpx.get(st.url + "/ready").json()["ready"] is True
        assert httpx.post(st.url + CHAT, json=msg()).status_code == 200


def test_openapi_document_lists_every_endpoint(http):
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/v1/chat/completions", "/v1/models", "/v1/models/{model_id}", "/v1/embeddings",
                 "/v1/messages", "/v1/messages/count_tokens", "/api/llm/inference", "/api/llm/chat",
                 "/api/llm/providers", "/api/llm/providers/{name}", "/api/llm/models", "/health",
                 "/ready", "/metrics"):
        assert path in doc["paths"], path
    assert "ChatCompletionRequest" in doc["components"]["schemas"]


def test_stream_broken_after_start_ends_with_an_error_event_in_each_dialect(http):
    with http.stream("POST", CHAT, json=msg("break", stream=True)) as r:
        lines = [x for x in r.iter_lines() if x.startswith("data: ")]
    assert '"content":"partial "' in lines[1]
    assert json.loads(lines[-1][6:])["error"]["code"] == "stream_interrupted"
    assert "data: [DONE]" not in lines
    with http.stream("POST", "/v1/messages", json={**msg("break", stream=True), "max_tokens": 5}) as r:
        events = [x[7:] for x in r.iter_lines() if x.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "error" and "message_stop" not in events
    with http.stream("POST", "/api/llm/inference", json={"messages": [{"role": "user", "content": "break"}]}) as r:
        events = [x[7:] for x in r.iter_lines() if x.startswith("event: ")]
    assert events[:3] == ["route", "text-delta", "text-delta"] and events[-1] == "error"


def test_serve_refuses_an_open_unauthenticated_bind(tmp_path):
    from legion_core.server import serve

    with pytest.raises(UnsafeBindError, match="--allow-unauthenticated"):
        serve(make_legion(tmp_path / "open"), host="0.0.0.0", port=0)


def test_serve_runs_until_interrupted(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from legion_core.server.run import free_port

    port = free_port()
    code = ("from legion_core.server import serve\n"
            f"serve({{'llm': {{'discovery': {{'enabled': False}}}}}}, host='127.0.0.1', port={port})\n")
    env = {**os.environ, "LEGION_HOME": str(tmp_path / "home"), "LEGION_PLUGINS": "none-at-all"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.05)
        assert r.json() == {"status": "ok", "started": True}
        assert httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        err = proc.stderr.read().decode()
        assert "Traceback" not in err
        assert f"Legion gateway on http://127.0.0.1:{port}" in err and "auth off" in err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_requests_rejected_by_the_gateway_are_audited(gateway):
    lg = gateway.server.config.app.state.gateway.legion
    httpx.post(gateway.url + CHAT, content=b"{broken", headers={"x-request-id": "rej-1"})
    httpx.post(gateway.url + "/v1/messages", json={**msg(), "model": "nope", "max_tokens": 5},
               headers={"x-request-id": "rej-2"})
    rows = {r["request_id"]: r for r in lg.pipeline.audit.recent(limit=50)}
    assert rows["rej-1"]["status"] == "error" and "malformed JSON" in rows["rej-1"]["error"]
    assert rows["rej-1"]["dialect"] == "openai"
    assert rows["rej-2"]["dialect"] == "anthropic" and "not_found" in rows["rej-2"]["error"]


def test_anthropic_message_start_carries_an_input_token_estimate(http):
    with http.stream("POST", "/v1/messages", json={**msg("count these words " * 20, stream=True),
                                                   "max_tokens": 5}) as r:
        lines = list(r.iter_lines())
    start = json.loads(lines[lines.index("event: message_start") + 1][6:])
    assert start["message"]["usage"]["input_tokens"] > 40


def test_tune_gc_freezes_startup_objects_and_raises_thresholds():
    """`serve()` owns its process and tunes the cyclic GC for a request-heavy server; the tuning
    is a function of its own so embedding applications (ServerThread, tests) keep theirs."""
    import gc

    from legion_core.server.run import GC_THRESHOLDS, tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == GC_THRESHOLDS
        assert GC_THRESHOLDS[0] > before[0]
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
