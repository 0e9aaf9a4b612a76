"""Queueing a job: a row in the caller's transaction, so it commits with what caused it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import Job, JobStatus


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    due_at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 10,
) -> bool:
    """Queue `kind` with `payload`; False when a job with `dedupe_key` exists already."""
    statement = insert(session, Job).values(
        kind=kind,
        payload=payload or {},
        status=JobStatus.QUEUED,
        due_at=due_at or utcnow(),
        attempts=0,
        max_attempts=max_attempts,
        dedupe_key=dedupe_key,
        created_at=utcnow(),
    )
    if dedupe_key is not None:
        statement = statement.on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await session.execute(statement)
    return result.rowcount == 1
