"""The audit log: one row per request (success or failure) in the `audit` table.

Rows are built on the request path (cheap: a tuple and some JSON) and committed by the batch
writer off it. The candidate list, most of a row, is stored once per distinct list in
`audit_candidates` and referenced by `audit.candidates_id` (rows from before that keep it
inline in `audit.candidates`). `recent()` and `stats()` serve `legion logs` and `legion stats`.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import orjson
from pydantic import TypeAdapter

from legion_core.store.db import Store
from legion_core.types import Attempt, CandidateScore, ChatRequest, ChatResponse, RoutingDecision

COLUMNS = ("request_id", "ts", "caller", "dialect", "intent", "provider", "model", "tier", "rule",
           "candidates", "attempts", "status", "error", "latency_ms", "overhead_ms", "input_tokens",
           "output_tokens", "cost_usd", "max_cost_usd", "cache_hit", "failovers", "escalated", "stream")
_INSERT = (f"INSERT OR REPLACE INTO audit ({', '.join(COLUMNS)}, candidates_id) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)}, ?)")
_INSERT_CANDIDATES = "INSERT OR IGNORE INTO audit_candidates (id, candidates) VALUES (?, ?)"
#: `recent()`'s columns: the candidates from wherever the row keeps them.
_SELECT = ", ".join("coalesce(a.candidates, c.candidates) AS candidates" if col == "candidates" else f"a.{col}"
                    for col in COLUMNS)
_JSON_COLUMNS = ("intent", "candidates", "attempts")


#: Whole lists serialized in one call (pydantic's core), not one `model_dump` per item: with
#: a catalog of ten models that was a third of the audit row's cost.
_CANDIDATES = TypeAdapter(list[CandidateScore])


class _CandidatesJSON:
    """The `candidates` column, memoised by the candidates' identity. The router shares identical
    (frozen) candidates between decisions, so most requests repeat an earlier list object for
    object; its JSON is then reused instead of serialising the whole catalog again. The memo
    holds the objects themselves, so an id can never be reused for a different candidate."""

    SIZE = 256

    def __init__(self) -> None:
        self._memo: dict[tuple[int, ...], tuple[list[CandidateScore], str]] = {}

    def __call__(self, cands: list[CandidateScore]) -> str:
        key = tuple(map(id, cands))
        hit = self._memo.get(key)
        if hit is not None:  # the entry holds the objects: no other object can have their ids
            return hit[1]
        text = _CANDIDATES.dump_json(cands, exclude_none=True).decode()
        if all(getattr(c, "model_config", {}).get("frozen") for c in cands):  # mutable ones may change
            if len(self._memo) >= self.SIZE:
                self._memo.clear()
            self._memo[key] = (list(cands), text)
        return text


candidates_json = _CandidatesJSON()


def _attempts_json(attempts: list[Attempt]) -> str:
    """`model_dump_json(exclude_none=True)` of each attempt, in one orjson call: their fields
    are scalars and a list of strings, so the instance dict is already the JSON object."""
    if not attempts:
        return "[]"
    return orjson.dumps([{k: v for k, v in a.__dict__.items() if v is not None} for a in attempts]).decode()


def build_row(*, request: ChatRequest, response: ChatResponse | None, decision: RoutingDecision | None,
              attempts: list[Attempt], latency_ms: float, status: str, error: str | None = None,
              max_cost_usd: float = 0.0, dialect: str = "native", stream: bool = False,
              caller: str | None = None) -> tuple[Any, ...]:
    """The row's values in `COLUMNS` order (`intent`, `candidates` and `attempts` as JSON text),
    built straight into the tuple the INSERT takes: this runs on every request."""
    provider_ms = 0.0
    failovers = 0
    for a in attempts:
        provider_ms += a.duration_ms
        if a.outcome == "failed":
            failovers += 1
    intent = dict(request.intent.__dict__)  # its fields are scalars: `model_dump()`, cheaper
    intent["requires"] = sorted(request.required_capabilities())
    d = decision
    if d is not None:
        intent["complexity"] = d.complexity
        intent["estimated_tokens"] = d.estimated_tokens
    r = response
    provider: str | None
    model: str | None
    tier: str | None
    if r is not None:
        provider, model, tier = r.provider, r.model, r.tier
        hit = r.cache_hit
        tokens_in, tokens_out = (0, 0) if hit else (r.usage.input_tokens, r.usage.output_tokens)  # a hit used none
        cost, escalated = r.cost_usd, int(r.escalated)
    else:
        provider, model, tier = (d.provider, d.model, d.tier) if d is not None else (None, None, None)
        hit, tokens_in, tokens_out, cost, escalated = False, 0, 0, 0.0, 0
    return (request.request_id, time.time(), caller or request.caller, dialect, orjson.dumps(intent).decode(),
            provider, model, tier, d.rule if d is not None else None,
            candidates_json(d.candidates) if d is not None else "[]", _attempts_json(attempts),
            status, error, round(latency_ms, 3), round(max(0.0, latency_ms - provider_ms), 3),
            tokens_in, tokens_out, cost, max_cost_usd, int(hit), failovers, escalated, int(stream))


_CANDIDATES_AT = COLUMNS.index("candidates")


class AuditLog:
    #: Candidate lists remembered as already queued for `audit_candidates`.
    MEMO_SIZE = 1024

    def __init__(self, store: Store, writer: Any) -> None:
        self.store = store
        self.writer = writer
        self._queued: dict[str, str] = {}  # candidates JSON -> its id
        self._errors = getattr(writer, "errors", 0)

    def record(self, row: tuple[Any, ...]) -> None:
        """Queue a row from `build_row`; never blocks on the disk. Its candidate list is replaced
        by a reference to `audit_candidates`."""
        cands = row[_CANDIDATES_AT]
        if cands and cands != "[]":
            row = (*row[:_CANDIDATES_AT], None, *row[_CANDIDATES_AT + 1:], self._candidates_id(cands))
        else:
            row = (*row, None)
        self.writer.put(_INSERT, row)

    def _candidates_id(self, text: str) -> str:
        """The list's id (a hash of its JSON), queuing the list the first time this process sees
        it. The router shares candidate lists, so `text` is mostly the very same string object
        (its hash cached): the lookup is cheap. After a failed batch the memo is dropped, so no
        row can point at a list that was never written."""
        errors = getattr(self.writer, "errors", 0)
        if errors != self._errors:
            self._errors = errors
            self._queued.clear()
        cid = self._queued.get(text)
        if cid is None:
            cid = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
            if len(self._queued) >= self.MEMO_SIZE:
                self._queued.clear()
            self._queued[text] = cid
            self.writer.put(_INSERT_CANDIDATES, (cid, text))
        return cid

    def flush(self) -> None:
        self.writer.flush()

    # ---------------------------------------------------------------- queries
    def recent(self, limit: int = 20, **filters: Any) -> list[dict[str, Any]]:
        """Newest first. Filters: any column by equality (`caller=`, `status=`, `provider=`,
        `cache_hit=`...), plus `since` (epoch seconds)."""
        self.flush()
        where, params = [], []
        for k, v in filters.items():
            if v is None:
                continue
            if k == "since":
                where.append("a.ts >= ?")
            elif k in COLUMNS:
                where.append(f"a.{k} = ?")
                v = int(v) if isinstance(v, bool) else v
            else:
                raise ValueError(f"unknown audit filter {k!r}; use one of: since, {', '.join(COLUMNS)}")
            params.append(v)
        sql = f"SELECT {_SELECT} FROM audit a LEFT JOIN audit_candidates c ON c.id = a.candidates_id"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY a.ts DESC LIMIT ?"
        params.append(int(limit))
        with self.store.lock:
            cur = self.store.conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        for row in rows:
            for c in _JSON_COLUMNS:
                if row.get(c):
                    row[c] = orjson.loads(row[c])
        return rows

    def stats(self, since: float | None = None) -> dict[str, Any]:
        """Totals and per provider/model breakdown: requests, errors, cache hits, tokens, cost,
        what the most expensive candidate would have cost, and latency percentiles."""
        self.flush()
        cond, params = ("WHERE ts >= ?", [since]) if since is not None else ("", [])
        with self.store.lock:
            c = self.store.conn
            tot = c.execute(
                "SELECT count(*), sum(status != 'ok'), sum(cache_hit), sum(failovers), sum(escalated), "
                "coalesce(sum(input_tokens),0), coalesce(sum(output_tokens),0), coalesce(sum(cost_usd),0), "
                f"coalesce(sum(max_cost_usd),0) FROM audit {cond}", params).fetchone()
            by = c.execute(
                "SELECT provider, model, tier, count(*), coalesce(sum(input_tokens),0), "
                "coalesce(sum(output_tokens),0), coalesce(sum(cost_usd),0), avg(latency_ms) "
                f"FROM audit {cond} {'AND' if cond else 'WHERE'} status = 'ok' "
                "GROUP BY provider, model, tier ORDER BY count(*) DESC", params).fetchall()
            lat = [r[0] for r in c.execute(
                f"SELECT latency_ms FROM audit {cond} {'AND' if cond else 'WHERE'} status = 'ok' "
                "ORDER BY latency_ms", params).fetchall()]
            ovh = [r[0] for r in c.execute(
                f"SELECT overhead_ms FROM audit {cond} {'AND' if cond else 'WHERE'} status = 'ok' "
                "AND cache_hit = 0 ORDER BY overhead_ms", params).fetchall()]
        n = tot[0] or 0
        cost, max_cost = float(tot[7]), float(tot[8])
        return {
            "requests": n, "errors": int(tot[1] or 0), "cache_hits": int(tot[2] or 0),
            "cache_hit_rate": (int(tot[2] or 0) / n) if n else 0.0,
            "failovers": int(tot[3] or 0), "escalations": int(tot[4] or 0),
            "input_tokens": int(tot[5]), "output_tokens": int(tot[6]),
            "cost_usd": cost, "max_cost_usd": max_cost, "saved_usd": max(0.0, max_cost - cost),
            "latency_ms": {"p50": _pct(lat, 50), "p95": _pct(lat, 95)},
            "overhead_ms": {"p50": _pct(ovh, 50), "p95": _pct(ovh, 95)},
            "by_model": [
                {"provider": r[0], "model": r[1], "tier": r[2], "requests": r[3], "input_tokens": r[4],
                 "output_tokens": r[5], "cost_usd": r[6], "avg_latency_ms": r[7]} for r in by],
        }


def _pct(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, round(p / 100 * (len(sorted_vals) - 1))))
    return float(sorted_vals[i])
