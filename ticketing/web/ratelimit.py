"""An in-process rate limiter: so many requests per minute per key, refilled evenly.

It implements the generic cell rate algorithm: each key keeps one time, the moment its
bucket would be full again, so memory is one float per recently seen key. Limits are per
process; with several `serve` processes each keeps its own.
"""

from __future__ import annotations

import dataclasses
import math
import time

WINDOW = 60.0


class RateLimiter:
    """At most `per_minute` requests per key in any minute, with bursts up to that many; 0 = off."""

    def __init__(self, per_minute: int, *, max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self.interval = WINDOW / per_minute if per_minute > 0 else 0.0
        self.max_keys = max_keys
        self._full_at: dict[str, float] = {}

    def hit(self, key: str, *, now: float | None = None) -> int:
        """Count one request for `key`; 0 when allowed, else the whole seconds to wait before retrying."""
        if self.per_minute <= 0:
            return 0
        now = time.monotonic() if now is None else now
        wait = self.wait(key, now=now)
        if wait:
            return wait
        self._full_at[key] = max(self._full_at.get(key, now), now) + self.interval
        if len(self._full_at) > self.max_keys:
            self._prune(now)
        return 0

    def wait(self, key: str, *, now: float | None = None) -> int:
        """The whole seconds until `key` may make one more request, counting nothing; 0 = now.

        For limits that count only failures: check before the attempt, `hit` after a failed one.
        """
        if self.per_minute <= 0:
            return 0
        now = time.monotonic() if now is None else now
        full_at = max(self._full_at.get(key, now), now) + self.interval
        if full_at - now > WINDOW:
            return max(1, math.ceil(full_at - now - WINDOW))
        return 0

    def _prune(self, now: float) -> None:
        # Keys whose bucket is full again carry no state worth keeping.
        self._full_at = {k: v for k, v in self._full_at.items() if v > now}
        while len(self._full_at) > self.max_keys:  # still too many: forget the oldest
            del self._full_at[next(iter(self._full_at))]

    def __len__(self) -> int:
        return len(self._full_at)


@dataclasses.dataclass(frozen=True)
class JoinLimits:
    """The limiters of /j/: one keyed by join code (every request), one by client address
    (failed look-ups only: unknown or malformed codes)."""

    per_code: RateLimiter
    per_address: RateLimiter
