"""Finished jobs are recorded together: a burst of jobs costs a few transactions, not one each."""

from __future__ import annotations

from sqlalchemy import event

from ticketing.db.models import JobStatus
from tests.jobs.test_worker import RUNS, queue, rows


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
