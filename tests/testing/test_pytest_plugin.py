"""The `legion_conformance` pytest plugin is loaded from its entry point and its fixtures work."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from importlib_metadata import entry_points

from legion_core.testing.fakes.openai import FakeOpenAI


def test_declared_as_a_pytest11_entry_point(pytestconfig: pytest.Config) -> None:
    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps["legion_conformance"] == "legion_core.testing.pytest_plugin"
    assert pytestconfig.pluginmanager.has_plugin("legion_conformance")


def test_free_port_refuses_connections(free_port: int) -> None:
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", free_port))


def test_fake_factory_starts_and_stops(legion_fake_factory: Any, legion_fake_openai: FakeOpenAI) -> None:
    fake = legion_fake_factory(FakeOpenAI, api_key=None, models=["m"])
    assert httpx.get(fake.url + "/v1/models").json()["data"][0]["id"] == "m"
    assert httpx.get(legion_fake_openai.url + "/v1/models",
                     headers={"Authorization": "Bearer sk-test-fake"}).status_code == 200
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(fake.url + "/health")
