"""schemathesis generates requests from `/openapi.json` for every operation: none may get a 5xx.

Providers on every tier answer anything (the in-test provider), so a generated request that is
valid routes somewhere; invalid ones must be 4xx. Bounded: few examples per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from legion_core.server import ServerThread, create_app
from legion_core.types import TIERS
from tests.server.conftest import REC, gw_provider, make_legion


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory):
    providers = {f"p-{t}": gw_provider(tier=t, model=f"m-{t}") for t in TIERS}
    lg = make_legion(tmp_path_factory.mktemp("schemathesis"), providers)
    with ServerThread(create_app(lg)) as st:
        yield st
    REC.__init__()  # type: ignore[misc]


def _operations(url):
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    return [r.ok() for r in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(live_gateway, mode):
    ops = _operations(live_gateway.url)
    assert len(ops) >= 14
    failures: list[str] = []
    statuses: dict[int, int] = {}
    for op in ops:
        @settings(max_examples=8, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case):
            response = case.call(base_url=live_gateway.url, timeout=20)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} -> {response.status_code}: "
                                f"{response.text[:300]} | body: {str(case.body)[:500]}")

        try:
            run()
        except Unsatisfiable:  # e.g. a GET without parameters has no negative variant
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n".join(failures[:10])
    # not vacuous: generated requests reach real routes, and bad ones are told off with 4xx
    if mode is GenerationMode.POSITIVE:
        assert sum(n for code, n in statuses.items() if code < 300) >= 10, statuses
    else:
        assert sum(n for code, n in statuses.items() if 400 <= code < 500) >= 10, statuses
