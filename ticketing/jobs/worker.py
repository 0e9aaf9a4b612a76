"""The worker: claims due jobs from the queue table, runs them, retries or parks them.

Claiming is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, so on
PostgreSQL any number of workers share the queue without taking the same job twice. SQLite
ignores the locking clause, but every SQLite transaction here is BEGIN IMMEDIATE on the one
pooled connection, so a claim there is serialised too (one worker process per file).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import bindparam, or_, select, update

from ticketing.db import utcnow
from ticketing.db.engine import autocommit, autocommit_session, engine_of
from ticketing.db.models import Job, JobStatus
from ticketing.jobs import queue
from ticketing.jobs.registry import KINDS, PERIODIC, JobContext, Kind, PermanentError, collecting_writes
from ticketing.logs import context_id

logger = logging.getLogger(__name__)

# Built once: a worker claims, and records finished jobs, many times a second when busy.
_CLAIM = (
    update(Job)
    .where(Job.id.in_(
        select(Job.id)
        .where(or_(
            (Job.status == JobStatus.QUEUED) & (Job.due_at <= bindparam("c_now", type_=Job.due_at.type)),
            (Job.status == JobStatus.RUNNING) & (Job.locked_at < bindparam("c_expired", type_=Job.locked_at.type)),
        ))
        .order_by(Job.due_at, Job.id)
        .limit(bindparam("c_limit"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    ))
    .values(status=JobStatus.RUNNING, locked_by=bindparam("c_name"),
            locked_at=bindparam("c_now", type_=Job.locked_at.type), attempts=Job.attempts + 1)
    .returning(Job)
    .execution_options(synchronize_session=False)
)
_jobs = Job.__table__
_FINISH = (
    _jobs.update()
    .where(_jobs.c.id == bindparam("d_id"), _jobs.c.status == JobStatus.RUNNING.value,
           _jobs.c.locked_by == bindparam("d_name"), _jobs.c.attempts == bindparam("d_attempts"))
    .values(status=JobStatus.DONE.value, finished_at=bindparam("d_now", type_=_jobs.c.finished_at.type),
            last_error=None, payload=bindparam("d_payload", type_=_jobs.c.payload.type), locked_by=None,
            locked_at=None)
)

# Payload keys that hold a secret for the one run that needs it (a join code): dropped from
# the row once the job is done, so the plain code does not outlive its mail.
SECRET_PAYLOAD_KEYS = ("code",)

# How long a finished job waits for others to be recorded with it.
FINISHED_BATCH_SECONDS = 0.01
# How long a busy worker waits for more of its jobs to finish before it claims again.
CLAIM_GATHER_SECONDS = 0.01

BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP_SECONDS = 3600.0

# Called after every run with (kind, outcome, seconds); outcome is done, retry or dead.
OutcomeHook = Callable[[str, str, float], None]


def backoff(attempts: int) -> dt.timedelta:
    """The wait before the next try after `attempts` failed ones: exponential, capped, with
    jitter (half fixed, half random) so jobs that failed together do not retry together."""
    delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return dt.timedelta(seconds=delay / 2 + random.uniform(0, delay / 2))


def worker_name() -> str:
    """host:pid:random, so a claim says which process holds it."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(3)}"


class Worker:
    """Runs queued jobs with `context`, up to `concurrency` at a time.

    A claim is a lease of `claim_timeout` seconds (60 by default): while a job runs, its
    worker renews the lease every third of that, so a slow job (cut off at `job_timeout`)
    keeps its claim for as long as it runs and is never run twice. A job whose lease ran
    out belongs to a worker that died; another worker takes it over within about a minute.
    A worker that cannot renew its leases for most of a lease stops its jobs itself before
    another worker could take them.
    """

    def __init__(
        self,
        context: JobContext,
        *,
        name: str | None = None,
        concurrency: int = 20,
        poll_seconds: float = 0.25,
        job_timeout: float = 120.0,
        claim_timeout: float = 60.0,
        grace_seconds: float = 10.0,
        on_outcome: OutcomeHook | None = None,
    ) -> None:
        self.context = context
        self.sessionmaker = context.sessionmaker
        self.name = name or worker_name()
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.job_timeout = job_timeout
        self.claim_timeout = dt.timedelta(seconds=claim_timeout)
        self.grace_seconds = grace_seconds
        self.on_outcome = on_outcome
        self._running: set[asyncio.Task[None]] = set()
        # The jobs this worker holds a lease on, with the task running each.
        self._claims: dict[int, asyncio.Task[Any]] = {}
        self._lease_users = 0
        self._lease_task: asyncio.Task[None] | None = None
        # Finished jobs waiting to be recorded together, and the task that will write them.
        self._finished: list[tuple[dict[str, Any], list[tuple[Any, dict[str, Any]]], asyncio.Future[None]]] = []
        self._finishing: asyncio.Task[None] | None = None

    # --- claiming and recording ----------------------------------------------------------

    async def claim(self, *, now: dt.datetime | None = None, limit: int | None = None) -> list[Job]:
        """Take up to `limit` due jobs (queued and due, or running past the claim timeout)."""
        now = now or utcnow()
        # One statement, atomic on its own: no transaction (and no BEGIN and COMMIT) around it.
        async with autocommit_session(self.sessionmaker) as session:
            claimed = list((await session.scalars(_CLAIM, {
                "c_now": now, "c_expired": now - self.claim_timeout, "c_limit": limit or self.concurrency,
                "c_name": self.name})).all())
        claimed.sort(key=lambda job: (job.due_at, job.id))
        return claimed

    async def renew_leases(self, *, now: dt.datetime | None = None) -> int:
        """Extend the lease of every job this worker is running; returns how many it still holds."""
        ids = list(self._claims)
        if not ids:
            return 0
        async with self.sessionmaker.begin() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.status == JobStatus.RUNNING, Job.locked_by == self.name)
                .values(locked_at=now or utcnow())
                .execution_options(synchronize_session=False)
            )
        return result.rowcount

    async def _keep_leases(self) -> None:
        """Renew this worker's leases every third of a lease for as long as it runs jobs."""
        lease = self.claim_timeout.total_seconds()
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await self.renew_leases()
                renewed = time.monotonic()
            except Exception as error:
                logger.warning("renewing job leases failed", extra={"worker": self.name, "error": type(error).__name__})
                if time.monotonic() - renewed > lease * 0.75:
                    # Another worker may soon take these jobs over: stop them first (they go back
                    # to the queue), so that no job runs twice.
                    logger.error("job leases about to run out; stopping this worker's jobs",
                                 extra={"worker": self.name, "count": len(self._claims)})
                    for task in list(self._claims.values()):
                        task.cancel()

    @contextlib.asynccontextmanager
    async def _leases(self):
        """Keep leases renewed while the block runs (nested uses share one renewing task)."""
        self._lease_users += 1
        if self._lease_task is None:
            self._lease_task = asyncio.create_task(self._keep_leases())
        try:
            yield
        finally:
            self._lease_users -= 1
            if self._lease_users == 0 and self._lease_task is not None:
                self._lease_task.cancel()
                await asyncio.gather(self._lease_task, return_exceptions=True)
                self._lease_task = None

    async def _record(self, job: Job, **values: Any) -> bool:
        """Write the outcome of this worker's claim; False when another worker took it over."""
        async with self.sessionmaker.begin() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job.id, Job.status == JobStatus.RUNNING, Job.locked_by == self.name,
                       Job.attempts == job.attempts)
                .values(locked_by=None, locked_at=None, **values)
                .execution_options(synchronize_session=False)
            )
        return result.rowcount == 1

    async def _done(self, job: Job, now: dt.datetime, writes: list[tuple[Any, dict[str, Any]]] = ()) -> None:
        """Record a finished job, and the `writes` it asked to make with it (`write_with_done`):
        with the others that finish meanwhile, in one transaction.

        The caller waits until the batch has committed, so a job is never reported done
        before its row says so; a burst of mails costs one transaction, not one per mail.
        """
        payload = {k: v for k, v in job.payload.items() if k not in SECRET_PAYLOAD_KEYS}
        written = asyncio.get_running_loop().create_future()
        self._finished.append(({"d_id": job.id, "d_attempts": job.attempts, "d_now": now, "d_payload": payload},
                               list(writes), written))
        if self._finishing is None:
            self._finishing = asyncio.create_task(self._write_finished())
        await written

    async def _write_finished(self) -> None:
        await asyncio.sleep(FINISHED_BATCH_SECONDS)  # let the jobs finishing alongside join the batch
        batch, self._finished, self._finishing = self._finished, [], None
        # The jobs' own writes, one executemany per statement.
        writes: dict[Any, list[dict[str, Any]]] = {}
        for _, asked, _ in batch:
            for write, params in asked:
                writes.setdefault(write, []).append(params)
        try:
            # Without such writes, each row is one job's own outcome: no transaction needs to
            # hold them together.
            opened = engine_of(self.sessionmaker).begin() if writes else autocommit(self.sessionmaker).connect()
            async with opened as connection:
                await connection.execute(_FINISH, [{**row, "d_name": self.name} for row, _, _ in batch])
                for write, rows in writes.items():
                    await connection.execute(write, rows)
        except BaseException as error:
            for _, _, written in batch:
                if not written.done():
                    written.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        for _, _, written in batch:
            if not written.done():
                written.set_result(None)

    async def _failed(self, job: Job, error: BaseException, now: dt.datetime) -> str:
        reason = _describe(error)
        if isinstance(error, PermanentError) or job.attempts >= _max_attempts(job):
            await self._record(job, status=JobStatus.DEAD, finished_at=now, last_error=reason)
            logger.error("job dead", extra={"job_id": job.id, "kind": job.kind, "attempts": job.attempts, "error": reason})
            return "dead"
        due = now + backoff(job.attempts)
        await self._record(job, status=JobStatus.QUEUED, due_at=due, last_error=reason)
        logger.warning("job failed, will retry", extra={"job_id": job.id, "kind": job.kind, "attempts": job.attempts,
                                                        "retry_at": due.isoformat(), "error": reason})
        return "retry"

    async def _tell_abandoned(self, kind: Kind, job: Job, reason: str) -> None:
        try:
            await kind.abandoned(self.context, dict(job.payload), reason)
        except Exception:
            # Bookkeeping only: the job is parked either way.
            logger.warning("could not record an abandoned job", exc_info=True,
                           extra={"job_id": job.id, "kind": job.kind})

    async def _release(self, job: Job) -> None:
        """Give an interrupted job back to the queue; the interrupted try does not count."""
        await self._record(job, status=JobStatus.QUEUED, due_at=utcnow(), attempts=job.attempts - 1)

    # --- running ---------------------------------------------------------------------------

    async def run_job(self, job: Job, *, now: dt.datetime | None = None) -> str:
        """Run one claimed job in its own task context; returns done, retry or dead."""
        token = context_id.set(f"job-{job.id}")
        started = time.perf_counter()
        self._claims[job.id] = asyncio.current_task()
        try:
            kind, abandoned = KINDS.get(job.kind), False
            if kind is None:
                error: BaseException | None = PermanentError(f"no handler for job kind {job.kind!r}")
            elif abandoned := job.attempts > _max_attempts(job):
                # Claimed back from a worker that died during the last allowed try.
                error = PermanentError(f"the worker running attempt {job.attempts - 1} stopped responding")
            else:
                error = None
                try:
                    with collecting_writes() as writes:
                        async with asyncio.timeout(self.job_timeout):
                            await kind.handler(self.context, dict(job.payload))
                except asyncio.CancelledError:
                    await _uninterrupted(self._release(job))
                    raise
                except Exception as exc:  # every failure is recorded on the job, never lost
                    error = exc
            if error is None:
                await _uninterrupted(self._done(job, now or utcnow(), writes))
                outcome = "done"
            else:
                outcome = await _uninterrupted(self._failed(job, error, now or utcnow()))
                if abandoned and kind.abandoned is not None:
                    await _uninterrupted(self._tell_abandoned(kind, job, str(error)))
            if self.on_outcome is not None:
                self.on_outcome(job.kind, outcome, time.perf_counter() - started)
            return outcome
        finally:
            self._claims.pop(job.id, None)
            context_id.reset(token)

    async def run_once(self, *, now: dt.datetime | None = None) -> int:
        """Claim one batch of due jobs and run it to the end; returns how many ran."""
        jobs = await self.claim(now=now)
        if jobs:
            async with self._leases():
                await asyncio.gather(*(self.run_job(job, now=now) for job in jobs))
        return len(jobs)

    async def run_until_idle(self, *, now: dt.datetime | None = None, limit: int = 100_000) -> int:
        """Run batches until nothing is due at `now`; returns how many jobs ran."""
        total = 0
        while total < limit:
            count = await self.run_once(now=now)
            if not count:
                break
            total += count
        return total

    async def run_periodic(self) -> None:
        """Run every @periodic task once; one failing does not stop the others."""
        for name, task in list(PERIODIC.items()):
            token = context_id.set(f"periodic-{name}")
            try:
                async with asyncio.timeout(self.job_timeout):
                    await task(self.context)
            except Exception:
                logger.exception("periodic task failed", extra={"task": name})
            finally:
                context_id.reset(token)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until `stop` is set; then let running jobs finish for the grace period and
        give the rest back to the queue."""
        wake = asyncio.Event()
        queue.subscribe(wake)
        sweep: asyncio.Task[None] | None = None
        next_sweep = time.monotonic()
        logger.info("worker started", extra={"worker": self.name, "concurrency": self.concurrency})
        leases = self._leases()
        await leases.__aenter__()
        listening = await self._listen(wake)
        try:
            while not stop.is_set():
                if time.monotonic() >= next_sweep and (sweep is None or sweep.done()):
                    next_sweep = time.monotonic() + self.context.settings.sweep_seconds
                    sweep = asyncio.create_task(self.run_periodic())
                # Cleared before looking, so a job queued while the claim runs still wakes us.
                wake.clear()
                free = self.concurrency - len(self._running)
                if 0 < free < self.concurrency // 2:
                    # Woken by a job that finished while most still run: a claim per finished
                    # job would cost a statement per job, so let a few more finish first.
                    await asyncio.wait(set(self._running), timeout=CLAIM_GATHER_SECONDS)
                    free = self.concurrency - len(self._running)
                jobs: list[Job] = []
                if free > 0:
                    try:
                        jobs = await self.claim(limit=free)
                    except Exception:
                        logger.exception("claiming jobs failed; trying again shortly")
                for job in jobs:
                    self._spawn(self.run_job(job))
                if jobs and len(jobs) == free:
                    continue  # more may be due: claim again at once
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
                if self._running:
                    waiters.append(asyncio.ensure_future(asyncio.wait(set(self._running), return_when=asyncio.FIRST_COMPLETED)))
                timeout = min(self.poll_seconds, max(next_sweep - time.monotonic(), 0))
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            queue.unsubscribe(wake)
            if listening is not None:
                await listening()
            if sweep is not None and not sweep.done():
                sweep.cancel()
            await self._drain()
            await leases.__aexit__(None, None, None)
            if sweep is not None:
                await asyncio.gather(sweep, return_exceptions=True)
            logger.info("worker stopped", extra={"worker": self.name})

    async def _listen(self, wake: asyncio.Event):
        """PostgreSQL: a connection, held while the worker runs, that sets `wake` whenever a
        statement in another process queues jobs (`queue.CHANNEL`). Returns what stops it; None
        elsewhere, or when it cannot be had (polling still finds every job, only later)."""
        engine = autocommit(self.sessionmaker)
        if engine.dialect.name != "postgresql":
            return None

        def woken(*_args) -> None:
            wake.set()

        connection = driver = None
        try:
            connection = await engine.connect()
            driver = (await connection.get_raw_connection()).driver_connection
            await driver.add_listener(queue.CHANNEL, woken)
        except Exception:
            logger.warning("not listening for queued jobs; polling for them", exc_info=True)
            if connection is not None:
                with contextlib.suppress(Exception):
                    await connection.close()
            return None

        async def stop() -> None:
            with contextlib.suppress(Exception):
                await driver.remove_listener(queue.CHANNEL, woken)  # UNLISTEN: the connection goes back to the pool
            with contextlib.suppress(Exception):
                await connection.close()

        return stop

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._running.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._running.discard(done)
            if not done.cancelled() and done.exception() is not None:
                logger.error("job task failed", exc_info=done.exception())

        task.add_done_callback(finished)

    async def _drain(self) -> None:
        if not self._running:
            return
        logger.info("waiting for running jobs", extra={"running": len(self._running), "grace_seconds": self.grace_seconds})
        _, pending = await asyncio.wait(set(self._running), timeout=self.grace_seconds)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("jobs interrupted and given back to the queue", extra={"count": len(pending)})
            await asyncio.wait(pending)


async def _uninterrupted(coro):
    """Run bookkeeping to its end even when the task is cancelled meanwhile (then re-raise),
    so a stopping worker never leaves a finished job marked as running."""
    inner = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        await inner
        raise


def _max_attempts(job: Job) -> int:
    """The kind's retry policy decides; the row's copy is for rows of kinds unknown here."""
    kind = KINDS.get(job.kind)
    return kind.max_attempts if kind is not None else job.max_attempts


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return "TimeoutError: the job took too long"
    text = str(error) if isinstance(error, PermanentError) else f"{type(error).__name__}: {error}"
    return text.strip()[:2000] or type(error).__name__


@contextlib.asynccontextmanager
async def running(worker: Worker):
    """Run `worker` in the background for the duration of the block, then stop it cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await task
