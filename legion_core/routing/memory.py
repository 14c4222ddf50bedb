"""Free memory, for judging whether a local model fits: `/proc/meminfo` MemAvailable.

Read at most once a second (the router asks on every decision). Returns None where
`/proc/meminfo` does not exist, and the memory filter then lets every model through.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def read_mem_available(path: str = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes, or None when unknown."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MemoryProbe:
    def __init__(self, reader: Callable[[], int | None] = read_mem_available, max_age: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.reader = reader
        self.max_age = max_age
        self.clock = clock
        self._value: int | None = None
        self._at = float("-inf")

    def __call__(self) -> int | None:
        now = self.clock()
        if now - self._at >= self.max_age:
            self._value = self.reader()
            self._at = now
        return self._value
