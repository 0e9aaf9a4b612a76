"""The web's rate limits: each a `ticketing.db.limits.Limit` counted in the database, so a
client has the same allowance however many processes serve it."""

from __future__ import annotations

import dataclasses

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import limits


class RateLimiter:
    """At most `per_minute` requests per key in any minute, with bursts up to that many; 0 = off."""

    def __init__(self, name: str, per_minute: int) -> None:
        self.limit = limits.Limit(name, per_minute)

    @property
    def per_minute(self) -> int:
        return self.limit.count

    async def hit(self, sessionmaker: async_sessionmaker[AsyncSession], key: str, *, now: float | None = None) -> int:
        """Count one request for `key`; 0 when allowed, else the whole seconds to wait before retrying."""
        return await limits.hit(sessionmaker, self.limit, key, now=now)

    async def wait(self, sessionmaker: async_sessionmaker[AsyncSession], key: str, *, now: float | None = None) -> int:
        """The whole seconds until `key` may make one more request, counting nothing; 0 = now.

        For limits that count only failures: check before the attempt, `hit` after a failed one.
        """
        return await limits.wait(sessionmaker, self.limit, key, now=now)


@dataclasses.dataclass(frozen=True)
class JoinLimits:
    """The limiters of /j/: one keyed by join code (every request), one by client address
    (failed look-ups only: unknown or malformed codes)."""

    per_code: RateLimiter
    per_address: RateLimiter
