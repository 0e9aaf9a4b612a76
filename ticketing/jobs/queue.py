"""Queueing a job: a row in the caller's transaction, so it commits with what caused it.

Also what operators do with the queue: list jobs, retry dead ones, count them by status.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import Job, JobStatus
from ticketing.errors import Conflict, NotFound
from ticketing.jobs.registry import try_limit

# Workers in this process waiting for work; woken when a transaction that queued a job
# commits, so a join mail leaves at once instead of at the next poll.
_WAITING: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()
_QUEUED_FLAG = "ticketing.jobs.queued"
# PostgreSQL: what a statement that queued jobs notifies, for workers in other processes
# (`ticketing serve` runs its worker beside the web process); they LISTEN and claim at once
# instead of at their next poll.
CHANNEL = "ticketing_jobs"


def subscribe(wake: asyncio.Event) -> None:
    _WAITING.add(wake)


def unsubscribe(wake: asyncio.Event) -> None:
    _WAITING.discard(wake)


@event.listens_for(Session, "after_commit")
def _wake_workers(session: Session) -> None:
    if session.info.pop(_QUEUED_FLAG, False):
        for wake in list(_WAITING):
            wake.set()


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop(_QUEUED_FLAG, None)


@dataclasses.dataclass(frozen=True)
class NewJob:
    """A job to queue: what to do, with what, when, and the key that makes it happen once."""

    kind: str
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    due_at: dt.datetime | None = None
    dedupe_key: str | None = None
    max_attempts: int | None = None


async def enqueue_many(session: AsyncSession, jobs: Sequence[NewJob]) -> int:
    """Queue `jobs` in one statement; returns how many were new (a known dedupe key is skipped).

    `max_attempts` defaults to what the kind registered (10 when not registered here).
    """
    if not jobs:
        return 0
    statement = insert(session, Job).values(job_rows(jobs, utcnow())).on_conflict_do_nothing(index_elements=["dedupe_key"])
    result = await session.execute(statement)
    session.info[_QUEUED_FLAG] = True
    return result.rowcount


def job_rows(jobs: Sequence[NewJob], now: dt.datetime) -> list[dict[str, Any]]:
    """The jobs table's columns for `jobs`, for a caller that writes them with its own statement."""
    return [
        {
            "kind": job.kind,
            "payload": job.payload,
            "status": JobStatus.QUEUED,
            "due_at": job.due_at or now,
            "attempts": 0,
            "max_attempts": job.max_attempts or try_limit(job.kind, 10),
            "dedupe_key": job.dedupe_key,
            "created_at": now,
        }
        for job in jobs
    ]


def notify_queued() -> None:
    """Wake this process's waiting workers: a transaction outside any ORM session queued jobs."""
    for wake in list(_WAITING):
        wake.set()


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any] | None = None,
    *,
    due_at: dt.datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
) -> bool:
    """Queue one job; False when a job with `dedupe_key` exists already."""
    return await enqueue_many(session, [NewJob(kind, payload or {}, due_at, dedupe_key, max_attempts)]) == 1


async def list_jobs(session: AsyncSession, *, status: JobStatus | None = None, kind: str | None = None,
                    limit: int = 100) -> list[Job]:
    """Jobs, newest first, optionally of one status and kind."""
    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    return list(await session.scalars(query))


async def retry_job(session: AsyncSession, job_id: int) -> Job:
    """Queue a dead job again, with a fresh set of attempts; NotFound or Conflict otherwise."""
    job = await session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status != JobStatus.DEAD:
        raise Conflict(f"job {job_id} is {job.status.value}; only dead jobs can be retried")
    job.status, job.attempts, job.due_at, job.finished_at = JobStatus.QUEUED, 0, utcnow(), None
    session.info[_QUEUED_FLAG] = True
    return job


async def retry_dead_jobs(session: AsyncSession) -> int:
    """Queue every dead job again; returns how many."""
    result = await session.execute(
        update(Job).where(Job.status == JobStatus.DEAD)
        .values(status=JobStatus.QUEUED, attempts=0, due_at=utcnow(), finished_at=None)
        .execution_options(synchronize_session=False)
    )
    session.info[_QUEUED_FLAG] = True
    return result.rowcount


async def depth(session: AsyncSession) -> dict[tuple[str, str], int]:
    """How many jobs there are of each (kind, status)."""
    rows = await session.execute(select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))
    return {(kind, JobStatus(status).value): count for kind, status, count in rows}


async def oldest_due(session: AsyncSession, *, now: dt.datetime | None = None) -> float:
    """Seconds the longest-waiting due job has waited (0 when none is due): the queue's lag."""
    now = now or utcnow()
    due_at = await session.scalar(
        select(func.min(Job.due_at)).where(Job.status == JobStatus.QUEUED, Job.due_at <= now)
    )
    if due_at is None:
        return 0.0
    if due_at.tzinfo is None:  # SQLite's MIN() bypasses the column type
        due_at = due_at.replace(tzinfo=dt.UTC)
    return max((now - due_at).total_seconds(), 0.0)
