"""A HashiCorp Vault KV v2 server, faithful on the wire for what Legion reads and writes.

Routes (``<mount>`` defaults to ``secret``; more with ``mounts=``):
- ``GET  /v1/<mount>/data/<path>[?version=N]`` — read; the real envelope
  ``{"request_id", "lease_id", "renewable", "lease_duration", "data": {"data": {...},
  "metadata": {...}}, "wrap_info", "warnings", "auth"}``;
- ``POST|PUT /v1/<mount>/data/<path>`` with ``{"data": {...}}`` — write a new version;
- ``DELETE /v1/<mount>/data/<path>`` — soft-delete the latest version (reads then 404 with
  ``data.data = null``, as Vault does);
- ``GET /v1/sys/health``.

A missing or wrong ``X-Vault-Token`` answers 403 ``{"errors": ["permission denied"]}``; a
missing path 404 ``{"errors": []}``; an unknown mount 404 ``{"errors": ["no handler for
route ..."]}``.
`fail_next()` injects a status/body/delay for the next calls.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

from aiohttp import web

from legion_core.testing.fakes.base import FakeServer


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVault(FakeServer):
    def __init__(self, token: str = "root-token", *, mounts: tuple[str, ...] = ("secret",),
                 **kw: Any) -> None:
        super().__init__(**kw)
        self.token = token
        self.mounts = set(mounts)
        #: (mount, path) -> list of versions: {"data": dict|None, "metadata": dict}
        self.store: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # ----------------------------------------------------------- test helpers
    def put(self, path: str, data: dict[str, Any], mount: str = "secret") -> int:
        """Write a new version directly (no HTTP); returns the version number."""
        versions = self.store.setdefault((mount, path.strip("/")), [])
        version = len(versions) + 1
        meta = {"created_time": _now(), "custom_metadata": None, "deletion_time": "",
                "destroyed": False, "version": version}
        versions.append({"data": dict(data), "metadata": meta})
        return version

    def reads(self) -> int:
        return self.calls["read"]

    # ----------------------------------------------------------- wire
    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/sys/health", self._health)
        app.router.add_route("*", "/v1/{mount}/data/{path:.+}", self._data)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"initialized": True, "sealed": False, "standby": False,
                                  "version": "1.17.0-fake", "cluster_name": "fake"})

    async def _data(self, request: web.Request) -> web.StreamResponse:
        name = {"GET": "read", "POST": "write", "PUT": "write", "DELETE": "delete"}.get(
            request.method, request.method.lower())
        body: Any = None
        if request.can_read_body:
            try:
                body = await request.json()
            except (ValueError, json.JSONDecodeError):
                return _errors(400, ["failed to parse JSON input"])
        self.record(name, request, body)
        fault = self.take_fault()
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return web.json_response(fault.body if fault.body is not None else {"errors": []},
                                         status=fault.status, headers=fault.headers)
        if request.headers.get("X-Vault-Token") != self.token:
            return _errors(403, ["permission denied"])
        mount, path = request.match_info["mount"], request.match_info["path"].strip("/")
        if mount not in self.mounts:
            return _errors(404, [f"no handler for route \"{mount}/data/{path}\". route entry not found."])
        key = (mount, path)
        if name == "write":
            if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
                return _errors(400, ["no data provided"])
            version = self.put(path, body["data"], mount)
            meta = self.store[key][version - 1]["metadata"]
            return web.json_response(_envelope(meta))
        versions = self.store.get(key)
        if not versions:
            return _errors(404, [])
        if name == "delete":
            versions[-1]["metadata"]["deletion_time"] = _now()
            versions[-1]["data"] = None
            return web.Response(status=204)
        if name != "read":
            return _errors(405, [f"unsupported operation {request.method}"])
        want = request.query.get("version")
        try:
            v = versions[int(want) - 1] if want and int(want) > 0 else versions[-1]
        except (ValueError, IndexError):
            return _errors(404, [])
        payload = _envelope({"data": v["data"], "metadata": v["metadata"]})
        # Vault answers a deleted version with 404 but still carries the metadata.
        return web.json_response(payload, status=404 if v["data"] is None else 200)


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False,
            "lease_duration": 0, "data": data, "wrap_info": None, "warnings": None, "auth": None}


def _errors(status: int, errors: list[str]) -> web.Response:
    return web.json_response({"errors": errors}, status=status)
