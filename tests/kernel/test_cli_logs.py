"""`legion logs` filters the audit log a real pipeline wrote (ok, refused by a guard, error)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from legion_core import hookimpl
from legion_core.errors import RequestRefused
from legion_core.lifecycle import Legion
from legion_core.plugins.manager import PluginManager
from legion_core.types import text_request
from tests.kernel.test_lifecycle import Plugin


class Bouncer:
    @hookimpl
    def legion_before_chat(self, request, context):
        if "forbidden" in request.last_user_text():
            raise RequestRefused("budget spent", status=429)


async def test_logs_filters_by_status(_isolated_home):
    pm = PluginManager()
    pm.load(entry_points=False)
    pm.register(Plugin())
    pm.register(Bouncer())
    legion = Legion(home=_isolated_home, plugins=pm,
                    settings={"llm": {"providers": {"e": {"type": "echo"}}}})
    await legion.start()
    try:
        await legion.pipeline.chat(text_request("hello", cache=False))
        with pytest.raises(RequestRefused):
            await legion.pipeline.chat(text_request("something forbidden", cache=False))
    finally:
        await legion.shutdown()  # flushes the audit writer

    from legion_core.cli.app import cli

    def rows(*args):
        r = CliRunner().invoke(cli, ["logs", "--json", *args])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    assert sorted(r["status"] for r in rows()) == ["ok", "refused"]
    assert [r["status"] for r in rows("--status", "refused")] == ["refused"]
    assert [r["status"] for r in rows("--status", "ok")] == ["ok"]
    assert rows("--status", "error") == []
