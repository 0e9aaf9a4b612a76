"""`ticketing worker` as a real process (stopped by SIGTERM mid-batch) and `ticketing jobs list|retry`."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys

import pytest
from sqlalchemy import select, update

from tests import factories
from tests.mail.test_delivery import buy
from ticketing import cli
from ticketing.db.models import Job, JobStatus

LINK = re.compile(r"/j/([A-Za-z0-9_-]{43})")


async def test_sigterm_mid_batch_loses_nothing(make_settings, smtp, start_client, sessionmaker, make_worker,
                                               database_url, var_dir):
    settings = make_settings(smtp_url=smtp.url)
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker, capacity=100)
    for n in range(30):  # one mail per order: thirty one-seat orders
        await buy(client, webinar, email=f"buyer{n}@example.com")
    smtp.delay = 0.05  # a slow server keeps mails in flight

    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_DATABASE_URL=database_url, TICKETING_VAR_DIR=str(var_dir), TICKETING_SMTP_URL=smtp.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ticketing", "worker", "--concurrency", "3",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            while len(smtp.raw) < 6:
                await asyncio.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    sent_before = len(smtp.raw)
    assert sent_before < 30  # it really was stopped mid-batch

    async with sessionmaker() as session:
        statuses = list(await session.scalars(select(Job.status).where(Job.kind == "mail.order")))
    assert JobStatus.RUNNING not in statuses
    assert statuses.count(JobStatus.DONE) == sent_before

    smtp.delay = 0
    await make_worker(settings).run_until_idle()
    messages = smtp.messages
    assert len(messages) == 30
    assert len({m["Message-ID"] for m in messages}) == 30
    assert len({LINK.search(m.get_body(preferencelist=("plain",)).get_content()).group(1) for m in messages}) == 30


async def _dead_jobs(sessionmaker, count: int) -> list[int]:
    from ticketing.jobs import enqueue

    async with sessionmaker.begin() as session:
        for n in range(count):
            await enqueue(session, "test.cli", {"n": n, "code": "must-not-be-printed"})
        await session.execute(update(Job).values(status=JobStatus.DEAD, attempts=10,
                                                 last_error="550 5.1.1 mailbox\nunavailable"))
    async with sessionmaker() as session:
        return list(await session.scalars(select(Job.id).order_by(Job.id)))


@pytest.fixture
def cli_env(monkeypatch, database_url, var_dir, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TICKETING_DATABASE_URL", database_url)
    monkeypatch.setenv("TICKETING_VAR_DIR", str(var_dir))
    # The command configures the root logger on the captured stderr; put it back afterwards.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def run_cli(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, list(argv))


async def test_jobs_list_and_retry(cli_env, sessionmaker, capsys):
    ids = await _dead_jobs(sessionmaker, 3)
    assert await run_cli("jobs", "list", "--status", "dead") == 0
    out = capsys.readouterr().out
    assert all(re.search(rf"^\s*{i}\s+test\.cli\s+dead\s+10/10", out, re.M) for i in ids)
    assert "550 5.1.1 mailbox unavailable" in out  # one line per job
    assert "must-not-be-printed" not in out

    assert await run_cli("jobs", "retry", str(ids[0])) == 0
    assert f"job {ids[0]} queued again" in capsys.readouterr().out
    assert await run_cli("jobs", "retry", str(ids[0])) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"ticketing: error: job {ids[0]} is queued; only dead jobs can be retried"
    assert await run_cli("jobs", "retry", "999999") == 1
    assert "no job 999999" in capsys.readouterr().err

    assert await run_cli("jobs", "retry", "--all-dead") == 0
    assert "2 dead job(s) queued again" in capsys.readouterr().out
    async with sessionmaker() as session:
        rows = list(await session.scalars(select(Job)))
    assert {(r.status, r.attempts) for r in rows} == {(JobStatus.QUEUED, 0)}

    assert await run_cli("jobs", "list", "--status", "dead") == 0
    assert capsys.readouterr().out.strip() == "no jobs"


def test_jobs_commands_reject_bad_arguments(capsys):
    for argv in (["jobs", "retry", "abc"], ["jobs", "retry"], ["jobs", "list", "--status", "lost"],
                 ["jobs", "retry", "3", "--all-dead"], ["worker", "--concurrency", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err
