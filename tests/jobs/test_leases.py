"""Job leases: a live worker keeps renewing the claim of a slow job, so no second worker runs
it; the claim of a worker that was killed runs out after one lease and is taken over."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys

import aiohttp
from aiohttp.test_utils import TestClient, TestServer

from tests import factories
from tests.jobs.test_worker import GATE, RUNS, queue, rows
from ticketing.app import create_app
from ticketing.db import create_engine, create_sessionmaker, utcnow
from ticketing.db.models import JobStatus
from ticketing.jobs.registry import JobContext
from ticketing.jobs.worker import running
from ticketing.workers import create_worker


async def test_a_live_worker_renews_its_lease_so_a_slow_job_runs_once(settings, sessionmaker, make_worker):
    RUNS.clear()
    GATE["release"] = asyncio.Event()
    await queue(sessionmaker, "test.block")
    lease = 0.6
    slow = make_worker(settings, name="slow", claim_timeout=lease)
    other_engine = create_engine(settings.database_url)
    try:
        async with aiohttp.ClientSession() as http:
            second = create_worker(JobContext(settings=settings, sessionmaker=create_sessionmaker(other_engine),
                                              stripe=None, http=http), name="second", claim_timeout=lease)
            async with running(slow):
                async with asyncio.timeout(10):
                    while not RUNS:
                        await asyncio.sleep(0.01)
                # Three leases long the second worker keeps looking; the renewed claim is never free.
                deadline = asyncio.get_running_loop().time() + 3 * lease
                taken = 0
                while asyncio.get_running_loop().time() < deadline:
                    taken += await second.run_once()
                    await asyncio.sleep(lease / 6)
                [row] = await rows(sessionmaker, "test.block")
                assert (taken, row.status, row.locked_by) == (0, JobStatus.RUNNING, "slow")
                GATE["release"].set()
                async with asyncio.timeout(10):
                    while (await rows(sessionmaker, "test.block"))[0].status != JobStatus.DONE:
                        await asyncio.sleep(0.02)
    finally:
        await other_engine.dispose()
    [row] = await rows(sessionmaker, "test.block")
    assert RUNS == {0: 1} and row.attempts == 1 and row.locked_by is None


async def test_renewing_moves_the_lease_and_a_lapsed_one_is_taken_over(settings, sessionmaker, make_worker):
    RUNS.clear()
    await queue(sessionmaker, "test.record")
    abandoned = make_worker(settings, name="abandoned")
    now = utcnow()
    [claimed] = await abandoned.claim(now=now)
    abandoned._claims[claimed.id] = None  # as if running it
    assert await abandoned.renew_leases(now=now + dt.timedelta(seconds=50)) == 1
    abandoned._claims.clear()  # ...and then its process vanished
    other = make_worker(settings, name="other")
    assert await other.run_until_idle(now=now + dt.timedelta(seconds=100)) == 0  # renewed at +50 s
    assert await other.run_until_idle(now=now + dt.timedelta(seconds=111)) == 1  # one lease later
    [row] = await rows(sessionmaker, "test.record")
    assert row.status == JobStatus.DONE and row.attempts == 2 and RUNS == {0: 1}
    assert await abandoned.renew_leases() == 0


async def test_a_killed_worker_process_s_mail_is_retaken_after_one_lease(make_settings, sessionmaker, make_worker,
                                                                          smtp, database_url, var_dir, tmp_path):
    settings = make_settings(smtp_url=smtp.url)
    webinar = await factories.webinar(sessionmaker)
    smtp.delay = 60.0  # the mail is in flight when the worker dies
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    try:
        evt = factories.event("checkout.session.completed", factories.checkout_session(webinar, email="kim@example.com"))
        assert (await factories.post_event(client, evt)).status == 200
    finally:
        await client.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_DATABASE_URL=database_url, TICKETING_VAR_DIR=str(var_dir), TICKETING_SMTP_URL=smtp.url,
               TICKETING_LOG_LEVEL="WARNING")
    worker = await asyncio.create_subprocess_exec(sys.executable, "-m", "ticketing", "worker", env=env, cwd=tmp_path,
                                                  stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(30):
            while not (await rows(sessionmaker, "mail.order")) or (await rows(sessionmaker, "mail.order"))[0].status != JobStatus.RUNNING:
                await asyncio.sleep(0.05)
    finally:
        worker.kill()
        await worker.wait()
    [claimed] = await rows(sessionmaker, "mail.order")
    smtp.delay = 0.0
    survivor = make_worker(settings, name="survivor")
    assert await survivor.run_until_idle(now=claimed.locked_at + dt.timedelta(seconds=45)) == 0
    assert await survivor.run_until_idle(now=claimed.locked_at + dt.timedelta(seconds=61)) >= 1
    [row] = await rows(sessionmaker, "mail.order")
    assert row.status == JobStatus.DONE and row.attempts == 2
    assert [str(m["To"]) for m in smtp.messages] == ["Bea Buyer <kim@example.com>"]
