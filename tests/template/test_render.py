"""The plugin template renders, for every kind, a package that installs, passes its own tests,
and shows up in `legion plugins`.

Isolation without slowness: one throw-away venv (no pip of its own, ~0.1 s) whose `.pth` file
adds the dev venv's site-packages, so the kernel and the test tools are importable without
reinstalling them, while the rendered plugins are installed into the throw-away venv only (the
dev venv never sees them). All six are rendered and installed in one `pip install
--no-build-isolation` (a recent setuptools is installed into the sandbox once), and
`legion plugins --json` runs once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

copier = pytest.importorskip("copier")

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugin-template"
KINDS = ("provider", "guard", "signal", "tool", "discovery", "extension")

pytestmark = pytest.mark.slow  # ~1 minute: six renders, six pip installs, six test runs


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A venv that sees the dev venv's packages, plus a clean LEGION_HOME."""
    root = tmp_path_factory.mktemp("template")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    dev_site = sysconfig.get_paths()["purelib"]
    Path(site, "_legion_dev.pth").write_text(f"import site; site.addsitedir({dev_site!r})\n")
    home = root / "home"
    (home / "settings").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "PYTEST_", "VIRTUAL_ENV"))}
    env.update(LEGION_HOME=str(home), PYTHONDONTWRITEBYTECODE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # setuptools >= 70 builds wheels without the `wheel` package: no isolated build env per plugin.
    run([py, "-m", "pip", "install", "-q", "setuptools>=70"], env=env)
    outs = {kind: render(kind, root / f"legion-tpl-{kind}") for kind in KINDS}
    run([py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-q", *outs.values()], env=env)
    listed = json.loads(run([py, "-c", "from legion_core.cli.app import main; main(['plugins', '--json'])"],
                            env=env, cwd=root))
    return py, env, outs, listed


def run(cmd, *, env, cwd=None, timeout=240):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd,
                       timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def render(kind: str, dst: Path) -> Path:
    copier.run_copy(str(TEMPLATE), str(dst), data={"plugin_name": f"tpl-{kind}", "kind": kind},
                    defaults=True, unsafe=False, quiet=True)
    return dst


def test_template_files_render_only_for_their_kind(tmp_path):
    out = render("tool", tmp_path / "tool")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "legion_tpl_tool/plugin.py" in files and "legion_tpl_tool/provider.py" not in files
    assert "tests/test_tool.py" in files and "tests/test_provider.py" not in files
    assert {"pyproject.toml", "README.md", "tox.ini", ".github/workflows/ci.yml"} <= set(files)
    assert not any(f.endswith(".jinja") or f.startswith(".jinja") for f in files)
    py = (out / "pyproject.toml").read_text()
    assert 'name = "legion-tpl-tool"' in py
    assert 'tpl-tool = "legion_tpl_tool.plugin:plugin"' in py


def test_bad_plugin_name_is_refused(tmp_path):
    with pytest.raises(Exception, match="lower-case letters"):
        copier.run_copy(str(TEMPLATE), str(tmp_path / "bad"), data={"plugin_name": "Bad Name", "kind": "tool"},
                        defaults=True, unsafe=False, quiet=True)


@pytest.mark.parametrize("kind", KINDS)
def test_rendered_plugin_installs_passes_its_tests_and_is_listed(kind, sandbox):
    py, env, outs, listed = sandbox
    out = outs[kind]
    # Its own tests, from its own directory (its pyproject configures pytest). Only the pytest
    # plugins they need are loaded: auto-loading every installed one costs ~6 s per run here.
    tests = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "pytest_asyncio.plugin",
                 "-p", "legion_core.testing.pytest_plugin", "tests"],
                env={**env, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}, cwd=out)
    assert " passed" in tests and " failed" not in tests and " error" not in tests
    ruff = Path(sysconfig.get_paths()["scripts"]) / "ruff"
    if ruff.exists():  # the rendered tox.ini lints with the rendered ruff settings
        run([ruff, "check", "--no-cache", "."], env=env, cwd=out)
    rec = next((r for r in listed if r["distribution"] == f"legion-tpl-{kind}"), None)
    assert rec is not None, f"legion plugins does not list legion-tpl-{kind}: {[r['name'] for r in listed]}"
    assert rec["name"] == f"tpl-{kind}" and rec["status"] == "active", rec
    # The dev venv itself stays clean.
    assert f"legion_tpl_{kind}" not in sys.modules
