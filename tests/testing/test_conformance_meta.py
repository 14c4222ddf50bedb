"""The conformance suite must be able to fail: run it (as a third party would, in a fresh pytest
process with strict asyncio mode and only the `legion_conformance` entry-point plugin) against
a correct provider and against deliberately broken ones, and check which tests fail."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE = textwrap.dedent('''
    from typing import Any
    import httpx
    import pytest
    from legion_core.errors import ProviderUnavailable, ProviderError
    from legion_core.providers.openai_wire import OpenAIWireProvider
    from legion_core.settings.models import ProviderSettings
    from legion_core.testing.conformance import ProviderConformance
    from legion_core.testing.fakes.openai import FakeOpenAI


    class Good(OpenAIWireProvider):
        kind = "good"
        def static_models(self):
            from legion_core.types import ModelInfo
            return [ModelInfo(id="gpt-4o-mini", capabilities={"streaming", "tools"})]
        async def list_models(self):
            return self.static_models()


    class NoStreamUsage(Good):
        include_usage = False            # usage gets estimated: the suite must notice


    class DropsSystem(Good):
        def chat_body(self, request, model, *, stream):
            body = super().chat_body(request, model, stream=stream)
            body["messages"] = [m for m in body["messages"] if m["role"] != "system"]
            return body


    class EverythingUnavailable(Good):
        async def post_json(self, path, body, **kw):
            try:
                return await super().post_json(path, body, **kw)
            except ProviderError as e:
                raise ProviderUnavailable(e.message, provider=self.name) from None


    class SwallowsBrokenStreams(Good):
        async def stream(self, request, model):
            try:
                async for c in super().stream(request, model):
                    yield c
            except ProviderError:
                return


    class Base(ProviderConformance):
        cls: Any = Good
        @pytest.fixture
        def fake(self, legion_fake_openai):
            return legion_fake_openai
        @pytest.fixture
        def provider_factory(self):
            def make(url, **settings):
                return self.cls("p", ProviderSettings(base_url=url + "/v1", api_key="sk-test-fake", **settings))
            return make
        @pytest.fixture
        def model(self):
            return "gpt-4o-mini"
        @pytest.fixture
        def embedding_model(self):
            return "text-embedding-3-small"


    class TestGood(Base):
        pass

    class TestNoStreamUsage(Base):
        cls = NoStreamUsage

    class TestDropsSystem(Base):
        cls = DropsSystem

    class TestEverythingUnavailable(Base):
        cls = EverythingUnavailable

    class TestSwallowsBrokenStreams(Base):
        cls = SwallowsBrokenStreams
''')


def test_suite_passes_a_correct_provider_and_fails_broken_ones(tmp_path: Path) -> None:
    (tmp_path / "test_meta_suite.py").write_text(MODULE)
    xml = tmp_path / "out.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
                           "-o", "asyncio_mode=strict", str(tmp_path),
                           # the broken providers only need the tests that should catch them
                           "-k", "TestGood or system or usage or error_kind_chat or dropped"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert xml.exists(), proc.stdout + proc.stderr
    failed: dict[str, set[str]] = {}
    passed: dict[str, int] = {}
    for case in ET.parse(xml).iter("testcase"):
        cls = case.get("classname", "").rsplit(".", 1)[-1]
        if case.find("failure") is not None or case.find("error") is not None:
            failed.setdefault(cls, set()).add(case.get("name", ""))
        elif case.find("skipped") is None:
            passed[cls] = passed.get(cls, 0) + 1
    assert "TestGood" not in failed, (failed.get("TestGood"), proc.stdout[-3000:])
    assert passed["TestGood"] >= 30
    assert failed["TestNoStreamUsage"] == {"test_stream_reports_usage"}
    assert failed["TestDropsSystem"] == {"test_system_prompt_forwarded", "test_system_message_in_messages_forwarded"}
    assert {"test_error_kind_chat[auth]", "test_error_kind_chat[rate_limited]",
            "test_error_kind_chat[context_overflow]", "test_error_kind_chat[content_policy]",
            "test_error_kind_chat[bad_request]"} <= failed["TestEverythingUnavailable"]
    assert "test_error_kind_chat[unavailable]" not in failed["TestEverythingUnavailable"]
    assert {"test_stream_dropped_mid_stream", "test_stream_dropped_before_first_token"} <= \
        failed["TestSwallowsBrokenStreams"]
