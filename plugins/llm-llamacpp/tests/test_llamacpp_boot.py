"""With no settings and no API keys, Legion boots on the embedded model and answers from it."""

from __future__ import annotations

import pytest

from legion_core.types import DoneChunk, RouteChunk, TextDelta, text_request

pytest.importorskip("legion_core.routing.router")
pytest.importorskip("legion_core.pipeline.pipeline")

KEY_VARS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_BEARER_TOKEN_BEDROCK", "LEGION_HOME")

pytestmark = pytest.mark.slow  # generates with the real bundled model


async def test_boots_with_nothing_configured_and_answers_locally(tmp_path, monkeypatch):
    from legion_core.lifecycle import Legion

    for v in KEY_VARS:
        monkeypatch.delenv(v, raising=False)
    # Only this plugin (the real entry point), so the test does not depend on what else is installed.
    monkeypatch.setenv("LEGION_PLUGINS", "llm-llamacpp")
    assert not (tmp_path / "settings").exists()
    async with Legion(home=tmp_path) as legion:
        assert legion.plugins.records["llm-llamacpp"].status == "active"
        assert legion.registry.names() == ["llamacpp"]
        assert legion.registry.default_provider == "llamacpp"
        [m] = legion.registry.models("llamacpp")
        assert (m.id, m.tier) == ("smollm2-135m-instruct", "local")

        r = await legion.pipeline.chat(text_request("What day comes after Tuesday?", max_tokens=12,
                                                    cache=False))
        assert r.text.strip()
        assert (r.provider, r.tier, r.model) == ("llamacpp", "local", "smollm2-135m-instruct")

        chunks = [c async for c in legion.pipeline.stream(text_request("Name a colour.", max_tokens=8,
                                                                        cache=False))]
        assert isinstance(chunks[0], RouteChunk) and chunks[0].tier == "local"
        assert sum(isinstance(c, TextDelta) for c in chunks) >= 2
        assert isinstance(chunks[-1], DoneChunk)
