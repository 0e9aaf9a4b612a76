"""Jobs queued by a process that runs no worker (`serve --no-worker`) carry their kind's try
limit, and `ticketing jobs list` shows the limit the worker will apply."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess

from sqlalchemy import select

from tests import factories
from tests.jobs.test_cli import run_cli
from tests.test_cli import START_TIMEOUT, TICKETING, _free_port, arun, bare_env, cli_env  # noqa: F401  (fixtures)
from ticketing.db.models import Job


async def test_serve_without_worker_queues_mails_with_their_kinds_try_limit(tmp_path, cli_env, sessionmaker,  # noqa: F811
                                                                            capsys, monkeypatch):
    port = _free_port()
    env = {**cli_env, "TICKETING_PORT": str(port)}
    webinar = await factories.webinar(sessionmaker, capacity=5)
    server = await asyncio.create_subprocess_exec(str(TICKETING), "serve", "--no-worker", env=env, cwd=tmp_path,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner = await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT)
        assert f"listening on http://127.0.0.1:{port}" in banner.decode(), banner
        result = await arun(["simulate", "checkout", "--webinar", str(webinar.id), "--email", "sim@example.com"],
                            env, tmp_path)
        assert result.returncode == 0, result.stderr
    finally:
        server.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:
            server.kill()
            await server.wait()

    async with sessionmaker() as session:
        rows = {job.kind: job.max_attempts for job in await session.scalars(select(Job))}
    assert rows["mail.order"] == 16  # the mail kinds' policy, not the fallback of 10
    assert rows["mail.reminder"] == 16  # a one-seat order: the seat's own reminders

    for name, value in env.items():
        if name.startswith("TICKETING_"):
            monkeypatch.setenv(name, value)
    assert await run_cli("jobs", "list", "--kind", "mail.order") == 0
    out = capsys.readouterr().out
    assert re.search(r"^\s*\d+\s+mail\.order\s+queued\s+0/16\b", out, re.M), out
