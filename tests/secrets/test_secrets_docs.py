"""docs/secrets.md is tested: its JSON loads and holds only references, its Vault error examples
are what a real (fake) Vault produces, and its Python examples run."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from legion_core.errors import SecretError
from legion_core.plugins.manager import PluginManager
from legion_core.secrets import is_reference, resolve, schemes_for
from legion_core.settings.loader import leaves, load_settings
from legion_core.testing.fakes.base import _free_port

DOC = Path(__file__).resolve().parents[2] / "docs" / "secrets.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


def test_json_example_loads_and_holds_only_references(home, write):
    (text,) = blocks("json")
    write("10.json", text)
    loaded = load_settings(home)
    secrets = [v for parts, v in leaves(loaded.raw) if parts[-1] in ("api_key", "api_keys")]
    assert len(secrets) == 3
    assert all(is_reference(v, ["env", "vault"]) for v in secrets)


def _vault_errors() -> list[str]:
    (text,) = [b for b in blocks("text") if "Vault denied" in b]
    return text.strip().splitlines()


def _real_errors(vault, monkeypatch) -> list[str]:
    doc_addr = "http://127.0.0.1:8200"
    vault.put("legion/openai", {"api_key": "doc-example-value"})
    out = []

    def err(ref: str, addr: str) -> None:
        from legion_core.secrets import VAULT

        VAULT.clear_cache()
        with pytest.raises(SecretError) as info:
            resolve(ref)
        out.append(str(info.value).replace(addr, doc_addr))

    dead = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("VAULT_ADDR", dead)
    err("vault://secret/legion/openai#api_key", dead)
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("LEGION_VAULT_TIMEOUT", "0.2")
    vault.fail_next(None, delay=0.6)
    err("vault://secret/legion/openai#api_key", vault.url)
    out[-1] = out[-1].replace("0.2 s", "3 s")
    monkeypatch.delenv("LEGION_VAULT_TIMEOUT")
    monkeypatch.setenv("VAULT_TOKEN", "s.wrong")
    err("vault://secret/legion/openai#api_key", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", vault.token)
    err("vault://secret/legion/nope#api_key", vault.url)
    err("vault://secret/legion/openai#apikey", vault.url)
    monkeypatch.delenv("VAULT_ADDR")
    err("vault://secret/legion/openai#api_key", vault.url)
    return out


def test_vault_error_examples_are_real(vault, monkeypatch):
    assert _real_errors(vault, monkeypatch) == _vault_errors()


def test_scheme_plugin_example(tmp_path):
    code = next(b for b in blocks("python") if "legion_secret_schemes" in b)
    plugin = types.ModuleType("doc_file_scheme")
    exec(compile(code, str(DOC), "exec"), plugin.__dict__)
    pm = PluginManager()
    pm.register(plugin, name="doc-file-scheme")
    schemes = schemes_for(pm)
    f = tmp_path / "openai"
    f.write_text("from-the-doc-plugin\n")
    assert resolve(f"file://{f}", schemes) == "from-the-doc-plugin"
    with pytest.raises(SecretError, match="no such file"):
        resolve(f"file://{tmp_path}/missing", schemes)


def test_python_example(monkeypatch):
    monkeypatch.setenv("HOME", "/home/doc-user")
    monkeypatch.delenv("UNSET_VARIABLE", raising=False)
    code = next(b for b in blocks("python") if "from legion_core.secrets import resolve" in b)
    lines = [ln.split("#")[0].strip() for ln in code.strip().splitlines()]
    ns: dict = {}
    exec(lines[0], ns)
    assert [eval(ln, ns) for ln in lines[1:] if ln] == ["/home/doc-user", "literal-fallback"]


def test_typo_example_is_real():
    with pytest.raises(SecretError) as info:
        resolve("evn://OPENAI_API_KEY")
    assert f"`{info.value}`" in DOC.read_text()
