"""Settings files may carry `//` comments (JSONC), as `legion init` writes them."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from legion_core.errors import SettingsError
from legion_core.settings.loader import load_settings, strip_comments


def test_comments_are_blanked_outside_strings_only():
    text = '// top\n{"url": "http://x//y", // trailing\n "q": "a\\"//b"}\n'
    out = strip_comments(text)
    assert len(out) == len(text) and out.count("\n") == text.count("\n")
    assert '"http://x//y"' in out and '"a\\"//b"' in out
    assert "top" not in out and "trailing" not in out


def test_a_commented_file_loads(home, write):
    write("10.json", '// starter\n{"llm": {\n  // the strategy\n  "routing": "latency_optimized"\n}}\n')
    assert load_settings(home).settings.llm.routing.strategy == "latency_optimized"


def test_errors_in_a_commented_file_keep_their_line(home, write):
    write("10.json", '// one\n// two\n{"llm": {"routing": {"strategy": "fastest"}}}\n')
    with pytest.raises(SettingsError) as e:
        load_settings(home)
    assert "10.json:3" in str(e.value) and "llm.routing.strategy" in str(e.value)


def test_legion_init_writes_a_file_that_validates_for_every_provider(home):
    from legion_core.cli.app import cli
    from legion_core.cli.commands.init import PROVIDERS

    r = CliRunner().invoke(cli, ["init", "--providers", ",".join(PROVIDERS)])
    assert r.exit_code == 0, r.output
    settings = load_settings(home).settings
    assert set(settings.llm.providers) == set(PROVIDERS)
    assert settings.llm.routing.rules[0].constraint == "never_cloud"
    r = CliRunner().invoke(cli, ["init"])
    assert r.exit_code != 0 and "--force" in r.output
