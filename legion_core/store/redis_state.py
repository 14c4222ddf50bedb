"""SharedState on Redis, for several gateway replicas sharing spend, circuit and rate counters.

Select it with `llm.state.backend = "redis"` and `llm.state.url` (a secret reference is fine).
`incr` is INCRBYFLOAT, atomic across replicas; the TTL is set only when the key is created, so a
period counter expires with its period, however often it is incremented.
"""

from __future__ import annotations

import json
from typing import Any

_INCR = """
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return v
"""


class RedisState:
    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "legion:",
                 client: Any = None) -> None:
        if client is None:
            import redis  # optional dependency: pip install 'legion-core[redis]'

            client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.r = client
        self.prefix = prefix
        self._incr = self.r.register_script(_INCR)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.r.get(self._k(key))
        return default if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.r.set(self._k(key), json.dumps(value), px=int(ttl * 1000) if ttl else None)

    def incr(self, key: str, amount: float = 1.0, ttl: float | None = None) -> float:
        return float(self._incr(keys=[self._k(key)], args=[amount, int(ttl * 1000) if ttl else 0]))

    def delete(self, key: str) -> None:
        self.r.delete(self._k(key))
