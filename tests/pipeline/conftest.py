"""Fixtures for pipeline tests; the fakes live in `pipeline_fakes.py`."""

from __future__ import annotations

from typing import Any

import pytest

from legion_core.lifecycle import Legion
from tests.pipeline.pipeline_fakes import SCRIPT, THREE_TIERS, Script, make_plugins


@pytest.fixture
def script() -> Any:
    SCRIPT.__init__()  # type: ignore[misc]
    yield SCRIPT
    SCRIPT.__init__()  # type: ignore[misc]


@pytest.fixture
async def make_legion(tmp_path: Any, script: Script) -> Any:
    made: list[Legion] = []

    async def factory(providers: dict[str, Any] | None = None, *, plugins: tuple[Any, ...] = (),
                      home: Any = None, **llm: Any) -> Legion:
        pm = make_plugins(*plugins)
        settings = {"llm": {"providers": providers if providers is not None else THREE_TIERS,
                            "discovery": {"enabled": False}, **llm}}
        lg = Legion(home=home or tmp_path, settings=settings, plugins=pm, load_entry_points=False)
        await lg.start()
        made.append(lg)
        return lg

    yield factory
    for lg in made:
        await lg.shutdown()
