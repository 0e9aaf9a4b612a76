"""The worker over the jobs table: claiming, retries and backoff, parking, take-over, stopping."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt

import pytest
from sqlalchemy import func, insert, select

from ticketing.db import create_engine, create_sessionmaker, utcnow
from ticketing.db.models import Job, JobStatus
from ticketing.jobs import enqueue
from ticketing.jobs.queue import CHANNEL
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.jobs.worker import backoff, running
from ticketing.workers import create_worker

RUNS: collections.Counter[int] = collections.Counter()
# Created in each test: an asyncio.Event belongs to the event loop that first waits on it.
GATE: dict[str, asyncio.Event] = {}


@job("test.record")
async def record(ctx, payload):
    RUNS[payload["n"]] += 1
    await asyncio.sleep(0)  # let the other worker's claim interleave


@job("test.fail", max_attempts=3)
async def fail(ctx, payload):
    raise RuntimeError("the thing is down")


@job("test.permanent")
async def permanent(ctx, payload):
    raise PermanentError("this can never work")


@job("test.block")
async def block(ctx, payload):
    RUNS[payload["n"]] += 1
    await GATE["release"].wait()


async def queue(sessionmaker, kind, count=1, **options) -> list[int]:
    async with sessionmaker.begin() as session:
        for n in range(count):
            await enqueue(session, kind, {"n": n, "code": "secret"}, **options)
    async with sessionmaker() as session:
        return list(await session.scalars(select(Job.id).where(Job.kind == kind).order_by(Job.id)))


async def rows(sessionmaker, kind) -> list[Job]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Job).where(Job.kind == kind).order_by(Job.id)))


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempts, full in ((1, 5), (2, 10), (3, 20), (6, 160), (20, 3600)):
        for _ in range(20):
            delay = backoff(attempts).total_seconds()
            assert full / 2 <= delay <= full
    assert len({backoff(4) for _ in range(10)}) > 1


async def test_success_marks_done_and_drops_the_secret(settings, sessionmaker, make_worker):
    RUNS.clear()
    await queue(sessionmaker, "test.record", 3)
    assert await make_worker(settings).run_until_idle() == 3
    assert RUNS == {0: 1, 1: 1, 2: 1}
    for row in await rows(sessionmaker, "test.record"):
        assert row.status == JobStatus.DONE and row.finished_at is not None and row.locked_by is None
        assert row.payload == {"n": row.payload["n"]}  # "code" is gone


async def test_failure_retries_with_backoff_then_parks(settings, sessionmaker, make_worker):
    await queue(sessionmaker, "test.fail")
    worker = make_worker(settings)
    now = utcnow()
    await worker.run_until_idle(now=now)
    [row] = await rows(sessionmaker, "test.fail")
    assert row.status == JobStatus.QUEUED and row.attempts == 1
    assert row.last_error == "RuntimeError: the thing is down"
    assert now + dt.timedelta(seconds=2.5) <= row.due_at <= now + dt.timedelta(seconds=5)
    assert await worker.run_until_idle(now=row.due_at - dt.timedelta(milliseconds=1)) == 0
    await worker.run_until_idle(now=row.due_at)
    [row] = await rows(sessionmaker, "test.fail")
    assert row.attempts == 2 and row.due_at >= now + dt.timedelta(seconds=5)
    await worker.run_until_idle(now=row.due_at)
    [row] = await rows(sessionmaker, "test.fail")
    assert row.status == JobStatus.DEAD and row.attempts == 3 and "down" in row.last_error
    assert await worker.run_until_idle(now=now + dt.timedelta(days=30)) == 0


async def test_permanent_error_parks_at_once(settings, sessionmaker, make_worker):
    await queue(sessionmaker, "test.permanent")
    await make_worker(settings).run_until_idle()
    [row] = await rows(sessionmaker, "test.permanent")
    assert (row.status, row.attempts, row.last_error) == (JobStatus.DEAD, 1, "this can never work")


async def test_unknown_kind_is_parked(settings, sessionmaker, make_worker):
    await queue(sessionmaker, "test.nobody_handles_this")
    await make_worker(settings).run_until_idle()
    [row] = await rows(sessionmaker, "test.nobody_handles_this")
    assert row.status == JobStatus.DEAD and "no handler" in row.last_error


async def test_a_claim_whose_worker_died_is_taken_over(settings, sessionmaker, make_worker):
    RUNS.clear()
    await queue(sessionmaker, "test.record")
    dead = make_worker(settings, name="dead-worker", claim_timeout=600)
    now = utcnow()
    [claimed] = await dead.claim(now=now)  # ...and then the process vanished
    alive = make_worker(settings, name="alive-worker", claim_timeout=600)
    assert await alive.run_until_idle(now=now + dt.timedelta(minutes=9)) == 0
    assert await alive.run_until_idle(now=now + dt.timedelta(minutes=11)) == 1
    [row] = await rows(sessionmaker, "test.record")
    assert row.status == JobStatus.DONE and row.attempts == 2 and RUNS == {0: 1}
    # The dead worker's late word changes nothing.
    assert not await dead._record(claimed, status=JobStatus.QUEUED)


async def test_stop_gives_unfinished_jobs_back_to_the_queue(settings, sessionmaker, make_worker):
    RUNS.clear()
    GATE["release"] = asyncio.Event()
    await queue(sessionmaker, "test.block", 3)
    worker = make_worker(settings, grace_seconds=0)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    while len(RUNS) < 3:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    for row in await rows(sessionmaker, "test.block"):
        assert row.status == JobStatus.QUEUED and row.attempts == 0 and row.locked_by is None
    GATE["release"].set()
    assert await make_worker(settings).run_until_idle() == 3
    assert {row.status for row in await rows(sessionmaker, "test.block")} == {JobStatus.DONE}


async def test_enqueue_wakes_a_waiting_worker(settings, sessionmaker, make_worker):
    RUNS.clear()
    worker = make_worker(settings, poll_seconds=3600)  # it would not look again for an hour
    async with running(worker):
        await asyncio.sleep(0.05)  # let it go idle
        await queue(sessionmaker, "test.record")
        async with asyncio.timeout(10):
            while not RUNS:
                await asyncio.sleep(0.01)
    assert RUNS == {0: 1}


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_job_another_process_queues_and_notifies_wakes_a_waiting_worker(settings, sessionmaker, engine,
                                                                                 make_worker):
    """PostgreSQL: the webhook's fast path notifies `queue.CHANNEL` with the jobs it queues; a
    worker in another process listens. Here the job comes through a plain connection, which
    wakes nothing in this process, as the web process's statement would."""
    RUNS.clear()
    worker = make_worker(settings, poll_seconds=3600)  # it would not look again for an hour
    async with running(worker):
        await asyncio.sleep(0.2)  # let it go idle
        async with engine.begin() as connection:
            await connection.execute(insert(Job.__table__).values(kind="test.record", payload={"n": 0}))
            await connection.execute(select(func.pg_notify(CHANNEL, "")))
        async with asyncio.timeout(10):
            while not RUNS:
                await asyncio.sleep(0.01)
    assert RUNS == {0: 1}


async def test_two_workers_run_each_job_exactly_once(settings, sessionmaker, make_worker, backend):
    RUNS.clear()
    count = 300
    await queue(sessionmaker, "test.record", count)
    other_engine = create_engine(settings.database_url)
    try:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            other = create_worker(JobContext(settings=settings, sessionmaker=create_sessionmaker(other_engine),
                                             stripe=None, http=http), name="second", concurrency=7)
            first = make_worker(settings, name="first", concurrency=11)
            ran = await asyncio.gather(first.run_until_idle(), other.run_until_idle())
    finally:
        await other_engine.dispose()
    assert sum(ran) == count
    assert all(n > 0 for n in ran)
    assert len(RUNS) == count and set(RUNS.values()) == {1}
    assert {row.status for row in await rows(sessionmaker, "test.record")} == {JobStatus.DONE}
