"""The REPL's keys and errors, through a pseudo-terminal: Ctrl-C stops an answer but not the
session, Ctrl-D and `quit` leave cleanly, multi-line input, and one-line errors with hints."""

from __future__ import annotations

import json

import pexpect
import pytest

from legion_core.testing.fakes.openai import FakeOpenAI
from tests.e2e.test_quickstart import LEGION, TIMEOUT, env_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def slow_openai(tmp_path):
    fake = FakeOpenAI().start()
    fake.reply_text = " ".join(f"word{i}" for i in range(200))
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "10.json").write_text(json.dumps({"llm": {"providers": {
        "openai": {"type": "openai", "tier": "cloud", "base_url": fake.url + "/v1",
                   "api_key": "env://OPENAI_API_KEY", "default_model": "gpt-4o-mini"}}}}))
    yield fake, tmp_path
    fake.stop()


def spawn(home, *args):
    return pexpect.spawn(LEGION, list(args), env=env_for(home), encoding="utf-8", timeout=TIMEOUT,
                         dimensions=(50, 200))


def test_ctrl_c_stops_the_answer_and_the_session_goes_on(slow_openai):
    fake, home = slow_openai
    fake.chunk_delay = 0.05  # 200 words take ~10 s: long enough to interrupt
    child = spawn(home, "chat", "--no-cache")
    child.expect("you > ")
    child.sendline("Tell me a long story")
    child.expect(r"legion \[openai/gpt-4o-mini\] > word0")
    child.sendintr()
    child.expect(r"\[interrupted\]")
    child.expect("you > ")
    fake.chunk_delay = 0.0
    child.sendline("Again, quickly")
    child.expect(r"word199")
    child.expect(r"\[tier: cloud")
    child.expect("you > ")
    child.sendeof()  # Ctrl-D leaves cleanly
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_multi_line_input_is_one_message(slow_openai):
    fake, home = slow_openai
    child = spawn(home, "chat", "--no-cache")
    child.expect("you > ")
    child.sendline("first line \\")
    child.expect(r"\.\.\. ")
    child.sendline("second line")
    child.expect(r"\[tier: cloud")
    child.expect("you > ")
    child.sendline("quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    user = [m for m in fake.chat_bodies[-1]["messages"] if m["role"] == "user"][-1]
    assert user["content"] == "first line \nsecond line"


def test_no_provider_at_all_is_one_line_with_a_hint(tmp_path):
    env = env_for(tmp_path)
    env["LEGION_PLUGINS"] = ""  # nothing installed that could answer
    out, status = pexpect.run(f"{LEGION} chat hello", env=env, encoding="utf-8", timeout=TIMEOUT,
                              withexitstatus=True)
    assert status == 1
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0].startswith("error: no provider is configured or enabled")
    assert lines[1].startswith("hint: ")
    assert "Traceback" not in out


def test_a_malformed_setting_is_one_line_naming_file_and_key(tmp_path):
    (tmp_path / "settings").mkdir(exist_ok=True)
    bad = tmp_path / "settings" / "20-bad.json"
    bad.write_text('{"llm": {"routing": {"strategy": "fastest"}}}')
    out, status = pexpect.run(f"{LEGION} chat hello", env=env_for(tmp_path), encoding="utf-8",
                              timeout=TIMEOUT, withexitstatus=True)
    assert status == 1
    assert "Traceback" not in out
    assert "20-bad.json" in out and "llm.routing.strategy" in out
    assert "hint:" in out
    out, status = pexpect.run(f"{LEGION} --debug chat hello", env=env_for(tmp_path), encoding="utf-8",
                              timeout=TIMEOUT, withexitstatus=True)
    assert status != 0 and "Traceback" in out
