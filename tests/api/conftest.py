"""API tests reuse the pipeline's scripted provider plugin."""

from __future__ import annotations

from typing import Any

import pytest

import legion_core
from legion_core import api
from tests.pipeline.pipeline_fakes import SCRIPT, THREE_TIERS, make_plugins


@pytest.fixture
def script() -> Any:
    SCRIPT.__init__()  # type: ignore[misc]
    yield SCRIPT
    SCRIPT.__init__()  # type: ignore[misc]


@pytest.fixture
def boot(tmp_path: Any, script: Any) -> Any:
    """`boot(**llm)` starts the process-wide Legion on a temp home with the scripted providers."""

    def _boot(providers: dict[str, Any] | None = None, home: Any = None, **llm: Any) -> Any:
        settings = {"llm": {"providers": providers or THREE_TIERS, "discovery": {"enabled": False}, **llm}}
        return legion_core.start(home=home or tmp_path, settings=settings, plugins=make_plugins(),
                                 load_entry_points=False)

    yield _boot
    api.shutdown()
