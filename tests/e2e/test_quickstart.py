"""The quickstart as an acceptance test: `legion chat` driven through a pseudo-terminal, as a user
would, against protocol-faithful fakes of Ollama, OpenAI and Anthropic on loopback.

Each step is one test, in order; they share the fakes and one LEGION_HOME (so the audit log
and the cache carry over, as they would for a user).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pexpect
import pytest

from legion_core.testing.fakes.anthropic import FakeAnthropic
from legion_core.testing.fakes.ollama import FakeOllama
from legion_core.testing.fakes.openai import FakeOpenAI

pytestmark = pytest.mark.e2e

LEGION = shutil.which("legion", path=os.path.dirname(sys.executable)) or "legion"
SIMPLE = "What day comes after Tuesday?"
HARD = ("Analyze the trade-offs between event sourcing and CRUD for a payments ledger, then compare "
        "their failure modes under network partitions, and finally recommend an architecture with "
        "a step-by-step migration plan, its risks and mitigations.")
TIMEOUT = 60


@pytest.fixture(scope="module")
def fakes():
    ollama = FakeOllama().start()
    openai = FakeOpenAI().start()
    anthropic = FakeAnthropic().start()
    ollama.reply_text = "Wednesday comes after Tuesday."
    openai.reply_text = "OpenAI here: a considered answer."
    anthropic.reply_text = "Anthropic here: a considered answer."
    yield {"ollama": ollama, "openai": openai, "anthropic": anthropic}
    for f in (ollama, openai, anthropic):
        f.stop()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    h = tmp_path_factory.mktemp("quickstart-home")
    (h / "settings").mkdir()
    return h


def write_settings(home: Path, providers: dict) -> None:
    (home / "settings" / "10-quickstart.json").write_text(json.dumps(
        {"llm": {"routing": "cost_optimized", "providers": providers}}, indent=2))


def three_providers(fakes) -> dict:
    return {
        "ollama": {"type": "ollama", "tier": "local", "base_url": fakes["ollama"].url,
                   "default_model": "llama3.2:3b"},
        "openai": {"type": "openai", "tier": "cloud", "base_url": fakes["openai"].url + "/v1",
                   "api_key": "env://OPENAI_API_KEY", "default_model": "gpt-4o-mini"},
        "anthropic": {"type": "anthropic", "tier": "frontier", "base_url": fakes["anthropic"].url,
                      "api_key": "env://ANTHROPIC_API_KEY", "default_model": "claude-haiku-4-5"},
    }


def env_for(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEGION_", "PYTEST_"))}
    env.update({"LEGION_HOME": str(home), "OPENAI_API_KEY": "sk-test-fake",
                "ANTHROPIC_API_KEY": "sk-ant-test", "TERM": "dumb", "COLUMNS": "200",
                # only the plugins a quickstart user would have installed
                "LEGION_PLUGINS": "legion-llm-ollama,legion-llm-openai,legion-llm-anthropic"})
    return env


def spawn_chat(home: Path, *args: str) -> pexpect.spawn:
    child = pexpect.spawn(LEGION, ["chat", *args], env=env_for(home), encoding="utf-8",
                          timeout=TIMEOUT, dimensions=(50, 200))
    child.expect("you > ")
    return child


def ask(child: pexpect.spawn, question: str) -> str:
    """Type a question; return everything up to and including the footer line."""
    child.sendline(question)
    child.expect(r"\[tier: [^\]]*\]")
    out = child.before + child.after
    child.expect("you > ")
    return out


def model_calls(fakes) -> dict[str, int]:
    """Model calls only (health checks and discovery are not model calls)."""
    return {"ollama": fakes["ollama"].calls["chat"], "openai": fakes["openai"].calls["chat"],
            "anthropic": fakes["anthropic"].calls["messages"]}


def leave(child: pexpect.spawn) -> None:
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def run(*args: str, home: Path) -> str:
    """A non-interactive command, through a pseudo-terminal too."""
    out, status = pexpect.run(" ".join([LEGION, *args]), env=env_for(home), encoding="utf-8",
                              timeout=TIMEOUT, withexitstatus=True)
    assert status == 0, out
    return out


def test_1_single_provider_banner_shows_provider_model_and_tier(fakes, home):
    write_settings(home, {"ollama": three_providers(fakes)["ollama"]})
    child = spawn_chat(home)
    banner = child.before
    assert "Legion 0.1.0" in banner
    assert "provider: ollama | model: llama3.2:3b | tier: local" in banner
    leave(child)


def test_2_simple_goes_local_and_analysis_goes_to_the_cloud(fakes, home):
    write_settings(home, three_providers(fakes))
    child = spawn_chat(home)
    assert "routing: cost_optimized" in child.before
    assert "providers: ollama (local), openai (cloud), anthropic (frontier)" in child.before
    out = ask(child, SIMPLE)
    assert "legion [ollama/llama3.2:3b] > Wednesday comes after Tuesday." in out
    assert "[tier: local" in out
    out = ask(child, HARD)
    assert ("legion [openai/" in out) or ("legion [anthropic/" in out)
    assert "[tier: cloud" in out or "[tier: frontier" in out
    leave(child)


def test_3_local_down_banner_warns_and_the_cheapest_cloud_answers(fakes, home):
    fakes["ollama"].stop()
    url = fakes["ollama"].url
    child = spawn_chat(home, "--no-cache")
    banner = child.before
    assert "ollama (unavailable)" in banner
    assert f"WARNING: ollama unreachable at {url} — removed from pool" in banner
    before = model_calls(fakes)["openai"]
    out = ask(child, SIMPLE)
    assert "legion [openai/gpt-4o-mini] > OpenAI here: a considered answer." in out
    assert "error" not in out.lower()
    assert model_calls(fakes)["openai"] == before + 1
    leave(child)


def test_4_the_same_question_twice_is_answered_from_the_cache(fakes, home):
    # Two sessions: inside one REPL session the second question carries the first exchange as
    # context, which is a different request (the cache key is the whole normalized request).
    question = "What is the capital of France?"
    child = spawn_chat(home)
    first = ask(child, question)
    leave(child)
    assert "legion [openai/gpt-4o-mini] >" in first
    calls = model_calls(fakes)
    child = spawn_chat(home)
    second = ask(child, question)
    leave(child)
    assert "legion [tier-0/cache] >" in second
    assert "[tier: tier-0" in second
    answer = "OpenAI here: a considered answer."
    assert answer in first and answer in second
    assert model_calls(fakes) == calls, "the cache hit reached a provider"


def test_5_logs_and_stats_show_those_requests(home):
    logs = run("logs", "--json", "-n", "50", home=home)
    rows = json.loads(logs)
    tiers = [("tier-0" if r["cache_hit"] else r["tier"]) for r in rows]
    assert tiers.count("local") >= 1 and tiers.count("tier-0") >= 1
    assert any(r["provider"] == "openai" for r in rows)
    table = run("logs", home=home)
    assert "ollama/llama3.2:3b" in table and "hit" in table
    stats = run("stats", home=home)
    assert f"requests:        {len(rows)}" in stats
    assert "cache hit rate:" in stats and "tier-0=" in stats and "local=" in stats
