"""Unit tests for the pieces that need no server: auth, error mapping, metrics text, encoders."""

from __future__ import annotations

import pytest

from legion_core.errors import (
    NoProviderAvailable,
    ProviderTimeout,
    RateLimited,
    RequestRefused,
    StreamInterrupted,
)
from legion_core.server import errors as E
from legion_core.server.auth import Authenticator, key_id, resolve_keys
from legion_core.server.metrics import GaugeRegistry, Metrics
from legion_core.server.native import safe_url
from legion_core.settings.models import AuthSettings
from legion_core.types import Attempt, ChatResponse, TextBlock, Usage


# ------------------------------------------------------------------ auth
def auth(enabled=True, pass_through=False, keys=("k-one", "k-two")):
    return Authenticator(AuthSettings(enabled=enabled, pass_through=pass_through), list(keys))


def test_auth_accepts_any_configured_key_in_either_header():
    a = auth()
    assert a.check("Bearer k-one", None).key_id == key_id("k-one")
    assert a.check(None, "k-two").key_id == key_id("k-two")
    assert a.check("bearer k-two", None).ok  # scheme is case-insensitive
    assert not a.check("Bearer k-on", None).ok  # a prefix is not a key
    assert not a.check("Token k-one", None).ok
    assert "missing API key" in a.check(None, None).reason


def test_auth_disabled_lets_everyone_in_and_forwards_only_under_pass_through():
    assert auth(enabled=False).check(None, None).ok
    assert auth(enabled=False).check("Bearer up-token", None).forward_token is None
    assert auth(enabled=False, pass_through=True).check("Bearer up-token", None).forward_token == "up-token"


def test_pass_through_with_auth_forwards_the_other_header_only():
    a = auth(pass_through=True)
    r = a.check("Bearer upstream-token", "k-one")
    assert r.ok and r.forward_token == "upstream-token"
    r = a.check("Bearer k-one", "upstream-token")
    assert r.ok and r.forward_token == "upstream-token"
    r = a.check("Bearer k-one", None)
    assert r.ok and r.forward_token is None  # the Legion key itself is never forwarded
    assert not a.check("Bearer upstream-token", None).ok


def test_resolve_keys_uses_secret_references(monkeypatch):
    monkeypatch.setenv("GW_K1", "from-env")
    assert resolve_keys(["env://GW_K1", ["env://GW_MISSING", "literal-key"], "env://GW_MISSING"]) == [
        "from-env", "literal-key"]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(("exc", "status", "oa_type", "an_type"), [
    (E.bad_request("x"), 400, "invalid_request_error", "invalid_request_error"),
    (E.unauthorized("x"), 401, "authentication_error", "authentication_error"),
    (RequestRefused("budget"), 403, "permission_error", "permission_error"),
    (E.not_found("x"), 404, "not_found_error", "not_found_error"),
    (E.too_large(10), 413, "invalid_request_error", "request_too_large"),
    (RateLimited("slow down", retry_after=7), 429, "rate_limit_error", "rate_limit_error"),
    (StreamInterrupted("broke"), 502, "upstream_error", "api_error"),
    (NoProviderAvailable("none"), 503, "service_unavailable", "overloaded_error"),
    (ProviderTimeout("late"), 504, "timeout", "api_error"),
    (KeyError("secret-ish"), 500, "server_error", "api_error"),
])
def test_error_shapes(exc, status, oa_type, an_type):
    info = E.describe(exc, "rid-1")
    assert info.status == status
    assert E.openai_body(info, "rid-1")["error"]["type"] == oa_type
    assert E.anthropic_body(info, "rid-1") == {"type": "error", "error": {"type": an_type, "message": info.message},
                                               "request_id": "rid-1"}
    assert E.native_body(info, "rid-1")["error"]["status"] == status
    if status == 500:
        assert "secret-ish" not in info.message and "rid-1" in info.message
    if isinstance(exc, RateLimited):
        assert info.headers == {"retry-after": "7"}


def test_all_candidates_rate_limited_is_a_429():
    att = [Attempt(provider=p, model="m", tier="local", outcome="failed", error_kind="rate_limited")
           for p in ("a", "b")]
    assert E.describe(NoProviderAvailable("all failed", attempts=att), "r").status == 429
    att[1].error_kind = "unavailable"
    assert E.describe(NoProviderAvailable("all failed", attempts=att), "r").status == 503


# ------------------------------------------------------------------ metrics
def test_metrics_text_format():
    m = Metrics()
    resp = ChatResponse(provider="p", model='we"ird', tier="local", content=[TextBlock(text="x")],
                        usage=Usage(input_tokens=3, output_tokens=2), cost_usd=0.5, cache_hit=True,
                        attempts=[Attempt(provider="q", model="m", tier="cloud", outcome="failed",
                                          error_kind="timeout")])
    m.observe_chat("openai", "chat_completions", 200, resp, 0.003, 0.4)
    text = m.render().decode()
    assert 'legion_tokens_total{provider="p",model="we\\"ird",tier="local",direction="input"} 3' in text
    assert 'legion_cost_usd_total{provider="p",model="we\\"ird",tier="local"} 0.5' in text
    assert 'legion_failovers_total{provider="q",model="m",tier="cloud",kind="timeout"} 1' in text
    assert 'le="0.0025"} 0' in text and 'le="0.005"} 1' in text and 'le="+Inf"} 1' in text
    assert 'legion_request_duration_seconds_count{dialect="openai",provider="p"' in text
    assert text.endswith("\n")


def test_gauge_registry():
    g = GaugeRegistry()
    g.set("legion_x", 2, {"a": "1"}, help="an x")
    g.register("legion_y", lambda: 5)
    g.register("legion_broken", lambda: 1 / 0)
    out: list[str] = []
    g.render(out)
    assert 'legion_x{a="1"} 2' in out and "legion_y 5" in out and "# HELP legion_x an x" in out
    assert not any("legion_broken " in line for line in out)
    with pytest.raises(ValueError):
        g.set("bad name", 1)


def test_safe_url_drops_credentials():
    assert safe_url("https://user:pw@host:8443/v1?key=abc") == "https://host:8443/v1"
    assert safe_url(None) is None


def test_text_collectors_are_appended_to_the_scrape():
    g = GaugeRegistry()
    g.add_collector("budget", lambda: "# TYPE legion_budget_warning gauge\nlegion_budget_warning{limit=\"daily\"} 1\n")
    g.add_collector("broken", lambda: 1 / 0)
    out: list[str] = []
    g.render(out)
    assert 'legion_budget_warning{limit="daily"} 1' in "\n".join(out)
    g.remove("budget")
    out2: list[str] = []
    g.render(out2)
    assert not out2
