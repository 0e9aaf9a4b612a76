"""Rate limits counted in the database, so that every process (`serve --processes N`, several
machines) gives one client one allowance.

Each limit allows `count` hits per `window`, in bursts of up to `count`, refilled evenly
(the generic cell rate algorithm). A key keeps one number, the moment its allowance is whole
again; a hit is one `INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`, atomic on both
databases, which moves that moment on only when the hit is allowed. Rows whose moment has
passed hold nothing and are purged by the worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time

from sqlalchemy import case, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db.dialect import insert
from ticketing.db.models import RateCounter


@dataclasses.dataclass(frozen=True)
class Limit:
    """At most `count` hits per key in any `window` seconds (bursts up to `count`); 0 = no limit."""

    name: str
    count: int
    window: float = 60.0

    @property
    def interval(self) -> float:
        return self.window / self.count

    def key(self, value: str) -> str:
        return f"{self.name}:{hashlib.sha256(value.encode('utf-8', 'surrogatepass')).hexdigest()[:40]}"


async def hit(sessionmaker: async_sessionmaker[AsyncSession], limit: Limit, value: str, *,
              now: float | None = None) -> int:
    """Count one hit for `value`; 0 when allowed, else the whole seconds to wait (nothing counted)."""
    if limit.count <= 0:
        return 0
    async with sessionmaker.begin() as session:
        return await hit_in(session, limit, value, now=now)


async def hit_in(session: AsyncSession, limit: Limit, value: str, *, now: float | None = None) -> int:
    """`hit` inside the caller's transaction, for a limit counted together with what it guards
    (a hit the transaction rolls back was never counted)."""
    if limit.count <= 0:
        return 0
    now = time.time() if now is None else now
    key = limit.key(value)
    whole = case((RateCounter.full_at > now, RateCounter.full_at), else_=now)
    statement = (
        insert(session, RateCounter).values(key=key, full_at=now + limit.interval)
        .on_conflict_do_update(index_elements=["key"], set_={"full_at": whole + limit.interval},
                               where=whole + limit.interval - now <= limit.window)
        .returning(RateCounter.full_at)
    )
    if (await session.execute(statement)).first() is not None:
        return 0
    full_at = await session.scalar(select(RateCounter.full_at).where(RateCounter.key == key))
    return _wait(limit, full_at, now)


async def wait(sessionmaker: async_sessionmaker[AsyncSession], limit: Limit, value: str, *,
               now: float | None = None) -> int:
    """The whole seconds until `value` may hit once more, counting nothing; 0 = now. For limits
    that count only failures: `wait` before the attempt, `hit` after a failed one."""
    if limit.count <= 0:
        return 0
    now = time.time() if now is None else now
    async with sessionmaker() as session:
        full_at = await session.scalar(select(RateCounter.full_at).where(RateCounter.key == limit.key(value)))
    return _wait(limit, full_at, now)


def _wait(limit: Limit, full_at: float | None, now: float) -> int:
    if full_at is None:
        return 0
    after = max(full_at, now) + limit.interval - now
    return max(1, math.ceil(after - limit.window)) if after > limit.window else 0


async def purge(sessionmaker: async_sessionmaker[AsyncSession], *, now: float | None = None) -> int:
    """Delete the counters whose allowance is whole again; returns how many."""
    now = time.time() if now is None else now
    async with sessionmaker.begin() as session:
        result = await session.execute(delete(RateCounter).where(RateCounter.full_at <= now)
                                       .execution_options(synchronize_session=False))
    return result.rowcount
