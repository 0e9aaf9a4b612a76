"""Finished jobs are recorded together: a burst of jobs costs a few transactions, not one each."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, event, update

from tests.jobs.test_worker import RUNS, queue, rows
from ticketing.db import utcnow
from ticketing.db.models import Job, JobStatus
from ticketing.jobs import enqueue
from ticketing.jobs.registry import job, write_with_done


async def test_jobs_finishing_together_are_recorded_in_one_transaction(settings, engine, sessionmaker, make_worker):
    RUNS.clear()
    await queue(sessionmaker, "test.record", 30)
    commits = []
    event.listen(engine.sync_engine, "commit", lambda connection: commits.append(1))
    assert await make_worker(settings, concurrency=30).run_once() == 30
    assert len(commits) <= 3  # the claim, and the finished jobs in one or two batches
    done = await rows(sessionmaker, "test.record")
    assert {row.status for row in done} == {JobStatus.DONE} and len(RUNS) == 30
    assert all("code" not in row.payload and row.locked_by is None for row in done)


_MARK = (update(Job.__table__).where(Job.__table__.c.dedupe_key == bindparam("m_key"))
         .values(last_error=bindparam("m_note")))


@job("test.mark")
async def mark(ctx, payload):
    asked = write_with_done(_MARK, {"m_key": f"marker-{payload['n']}", "m_note": "marked"})
    assert asked, "the worker collects the writes of the job it runs"
    if payload.get("then_fail"):
        raise RuntimeError("failed after asking for the write")


async def _markers(sessionmaker, count: int) -> None:
    async with sessionmaker.begin() as session:
        for n in range(count):
            await enqueue(session, "test.marker", {"n": n}, dedupe_key=f"marker-{n}",
                          due_at=utcnow() + dt.timedelta(days=1))


async def test_writes_asked_with_done_are_made_with_the_done_marks_in_one_transaction(settings, engine, sessionmaker,
                                                                                    make_worker):
    await _markers(sessionmaker, 30)
    await queue(sessionmaker, "test.mark", 30)
    commits = []
    event.listen(engine.sync_engine, "commit", lambda connection: commits.append(1))
    assert await make_worker(settings, concurrency=30).run_once() == 30
    assert len(commits) <= 3
    assert {row.status for row in await rows(sessionmaker, "test.mark")} == {JobStatus.DONE}
    assert [row.last_error for row in await rows(sessionmaker, "test.marker")] == ["marked"] * 30


async def test_a_job_that_fails_after_asking_makes_no_write(settings, sessionmaker, make_worker):
    await _markers(sessionmaker, 1)
    async with sessionmaker.begin() as session:
        await enqueue(session, "test.mark", {"n": 0, "then_fail": True})
    assert await make_worker(settings).run_once() == 1
    [failed] = await rows(sessionmaker, "test.mark")
    assert failed.status == JobStatus.QUEUED and "failed after asking" in failed.last_error
    [marker] = await rows(sessionmaker, "test.marker")
    assert marker.last_error is None


def test_outside_a_worker_the_caller_is_told_to_write_itself():
    assert write_with_done(_MARK, {"m_key": "marker-0", "m_note": "marked"}) is False
