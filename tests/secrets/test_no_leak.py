"""Planted secrets: resolve them through env, Vault and literals, provoke every warning and error
this part can produce, render the settings view and the `legion config` CLI, capture all of it,
and prove no planted value appears anywhere."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner

from legion_core import log
from legion_core.errors import LegionError, SecretError, SettingsError
from legion_core.providers.base import Provider
from legion_core.secrets import VAULT, resolve, resolve_api_keys, resolve_credentials
from legion_core.settings.loader import load_settings
from legion_core.settings.view import effective_dict, effective_view, redacted_settings

P_ENV = "sk-planted-env-9f8e7d6c5b4a"
P_VAULT = "sk-planted-vault-1a2b3c4d5e6f"
P_LIT = "sk-planted-literal-5e6f7a8b9c0d"
P_GW = "gw-planted-7c6b5a4d3e2f"
PLANTED = (P_ENV, P_VAULT, P_LIT, P_GW)


class Cloud(Provider):
    kind = "cloud"
    needs_credentials = True
    credential_keys = ("api_key",)

    async def chat(self, request, model):  # pragma: no cover
        raise NotImplementedError

    def stream(self, request, model):  # pragma: no cover
        raise NotImplementedError


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_planted_secrets_appear_nowhere(fmt, home, write, vault, monkeypatch, capfd, tmp_path):
    buf = io.StringIO()
    log.configure("debug", fmt, stream=buf)
    try:
        outputs = _exercise(home, write, vault, monkeypatch, tmp_path)
    finally:
        log.configure()
    captured = capfd.readouterr()
    everything = {"logs": buf.getvalue(), "stdout": captured.out, "stderr": captured.err, **outputs}

    for where, text in everything.items():
        for planted in PLANTED:
            assert planted not in text, f"planted secret leaked into {where}"
    # The test looked at real output: warnings name providers and references, the view and the
    # CLI show references, and the errors say what went wrong.
    logs = everything["logs"]
    assert "broken" in logs and "vault://secret/legion/missing#k" in logs and "env://UNSET_X" in logs
    assert "env://UNSET_GW" in logs
    assert "leak attempt" in logs and "***" in logs
    assert "env://PLANTED_ENV" in everything["view"]
    assert "env://PLANTED_ENV" in everything["cli_config"]
    assert "permission denied" in everything["errors"]
    assert "llm.api_key" in everything["errors"] and "llm.routing.strategy" in everything["errors"]
    assert "llm.routing.strategy" in everything["cli_check"]


def _exercise(home, write, vault, monkeypatch, tmp_path) -> dict[str, str]:
    out: dict[str, str] = {}
    monkeypatch.setenv("PLANTED_ENV", P_ENV)
    monkeypatch.setenv("PLANTED_GW", P_GW)
    monkeypatch.delenv("UNSET_X", raising=False)
    monkeypatch.delenv("UNSET_GW", raising=False)
    vault.put("legion/openai", {"api_key": P_VAULT})
    write("10-llm.json", {"llm": {
        "providers": {
            "openai": {"type": "cloud", "api_key": "env://PLANTED_ENV"},
            "anthropic": {"type": "cloud", "api_key": "vault://secret/legion/openai#api_key"},
            "literal": {"type": "cloud", "api_key": P_LIT},
            "broken": {"type": "cloud", "api_key": ["vault://secret/legion/missing#k", "env://UNSET_X"]},
        },
        "api": {"auth": {"enabled": True, "api_keys": ["env://PLANTED_GW", "env://UNSET_GW"]}},
    }})

    # Boot-time resolution, with its warnings.
    loaded = load_settings(home)
    resolved, unresolved = resolve_credentials(loaded.settings.llm.providers, {"cloud": Cloud}, None)
    assert resolved["openai"].api_key == P_ENV
    assert resolved["anthropic"].api_key == P_VAULT
    assert resolved["literal"].api_key == P_LIT
    assert unresolved == {"broken": ["vault://secret/legion/missing#k | env://UNSET_X"]}
    assert resolve_api_keys(loaded.settings.llm.api.auth.api_keys) == [P_GW]

    # Errors: Vault refuses, settings are wrong in ways that touch secret values.
    errors: list[str] = []
    VAULT.clear_cache()
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    with pytest.raises(SecretError) as e1:
        resolve("vault://secret/legion/openai#api_key")
    errors.append(str(e1.value))
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    bad_home = tmp_path / "bad-home"
    (bad_home / "settings").mkdir(parents=True)
    (bad_home / "settings" / "10.json").write_text(json.dumps({"llm": {
        "api_key": {"nested": P_LIT}, "routing": {"strategy": P_ENV}}}))
    with pytest.raises(SettingsError) as e2:
        load_settings(bad_home)
    errors.append(str(e2.value) + repr(e2.value.details))
    for e in (e1.value, e2.value):
        log.get_logger("legion.test").error("error while booting", error=e, text=str(e))
    log.get_logger("legion.test").warning("leak attempt", value=P_VAULT, msg=f"key is {P_ENV}",
                                          nested={"k": [P_LIT, P_GW]})
    out["errors"] = "\n".join(errors)

    # The view, in all three forms.
    out["view"] = json.dumps([effective_view(loaded), effective_dict(loaded), redacted_settings(loaded)])

    # The CLI: `legion config`, `--json`, and `config check` on the broken settings.
    from legion_core.cli.app import cli
    from legion_core.cli.context import cli_plugins

    cli_plugins.cache_clear()
    runner = CliRunner()
    r1 = runner.invoke(cli, ["config"], env={"LEGION_HOME": str(home)})
    r2 = runner.invoke(cli, ["config", "--json"], env={"LEGION_HOME": str(home)})
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    out["cli_config"] = r1.output + r2.output
    others = [runner.invoke(cli, cmd, env={"LEGION_HOME": str(home)})
              for cmd in (["version"], ["plugins", "--json"], ["config", "check"])]
    assert all(r.exit_code == 0 for r in others), [r.output for r in others]
    out["cli_other"] = "".join(r.output for r in others)
    r3 = runner.invoke(cli, ["config", "check"], env={"LEGION_HOME": str(bad_home)})
    assert r3.exit_code != 0
    out["cli_check"] = r3.output + (str(r3.exception) if isinstance(r3.exception, LegionError) else "")
    cli_plugins.cache_clear()
    return out
