"""Daemon mode: ask() goes to a running gateway's native endpoint; its health is cached; when it
is down, ask() falls back to in-process routing. The "gateway" is a real aiohttp server."""

from aiohttp import web

import legion_core
from legion_core.errors import ContextOverflow, RequestRefused
from legion_core.testing.fakes.base import FakeServer, _free_port
from legion_core.types import ChatRequest, ChatResponse, TextBlock


class TinyGateway(FakeServer):
    def __init__(self):
        super().__init__()
        self.healthy = True
        self.refuse = False
        self.overflow = False

    def routes(self, app):
        async def health(request):
            self.calls["health"] += 1
            return web.json_response({"status": "ok" if self.healthy else "down"},
                                     status=200 if self.healthy else 503)

        async def chat(request):
            body = await request.json()
            self.record("chat", request, body)
            req = ChatRequest.model_validate(body)
            if self.refuse:
                return web.json_response({"error": {"kind": "refused", "message": "budget spent",
                                                    "status": 403}}, status=403)
            if self.overflow:
                return web.json_response({"error": {"kind": "context_overflow", "status": 400,
                                                    "message": "the largest context window is 8192"}}, status=400)
            resp = ChatResponse(provider="gw", model="gw-model", tier="fleet", request_id=req.request_id,
                                content=[TextBlock(text=f"gateway says: {req.last_user_text()}")])
            return web.Response(body=resp.model_dump_json(), content_type="application/json")

        app.router.add_get("/health", health)
        app.router.add_post("/api/llm/chat", chat)


def test_ask_goes_to_the_gateway(boot, script):
    with TinyGateway() as gw:
        boot(daemon={"enabled": True, "url": gw.url})
        r = legion_core.ask("hi there", tier="local")
        assert r.provider == "gw" and r.text == "gateway says: hi there"
        assert script.total() == 0, "nothing was routed in-process"
        assert gw.requests[0]["body"]["tier"] == "local"
        legion_core.ask("again")
        assert gw.calls["health"] == 1, "health is cached (30 s)"
        assert gw.calls["chat"] == 2


def test_falls_back_in_process_when_the_gateway_is_down(boot, script):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens here
    boot(daemon={"enabled": True, "url": url})
    r = legion_core.ask("What day comes after Tuesday?")
    assert r.provider == "loc" and script.total() == 1


def test_unhealthy_gateway_is_skipped_until_the_cache_expires(boot, script):
    with TinyGateway() as gw:
        gw.healthy = False
        boot(daemon={"enabled": True, "url": gw.url})
        assert legion_core.ask("one?").provider == "loc"
        assert legion_core.ask("two?").provider == "loc"
        assert gw.calls["health"] == 1 and gw.calls["chat"] == 0


def test_gateway_errors_surface_typed(boot, script):
    with TinyGateway() as gw:
        gw.refuse = True
        boot(daemon={"enabled": True, "url": gw.url})
        try:
            legion_core.ask("hi")
        except RequestRefused as e:
            assert "budget spent" in str(e) and e.status == 403
        else:  # pragma: no cover
            raise AssertionError("expected RequestRefused")
        assert script.total() == 0


def test_gateway_context_overflow_surfaces_as_in_process(boot, script):
    with TinyGateway() as gw:
        gw.overflow = True
        boot(daemon={"enabled": True, "url": gw.url})
        try:
            legion_core.ask("hi", max_tokens=10**6)
        except ContextOverflow as e:
            assert "largest context window" in str(e) and e.status == 400
        else:  # pragma: no cover
            raise AssertionError("expected ContextOverflow")
        assert script.total() == 0


def test_daemon_disabled_routes_in_process(boot, script):
    with TinyGateway() as gw:
        boot(daemon={"enabled": False, "url": gw.url})
        assert legion_core.ask("hi").provider == "loc"
        assert gw.total_calls == 0


def test_daemon_sends_the_gateway_key_when_configured(boot, script, monkeypatch):
    monkeypatch.setenv("LEGION_GW_KEY", "gw-secret-123456")
    with TinyGateway() as gw:
        boot(daemon={"enabled": True, "url": gw.url, "api_key": "env://LEGION_GW_KEY"})
        legion_core.ask("hi there")
        assert gw.requests[0]["headers"]["Authorization"] == "Bearer gw-secret-123456"
