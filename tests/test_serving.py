"""`ticketing serve` as processes, run for real: the worker beside the web process, more web
processes on one port, and Ctrl-C, SIGTERM or a dying child stopping all of them."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess

import pytest
from sqlalchemy import func, select

from tests import factories
from tests.test_cli import START_TIMEOUT, TICKETING, _free_port, arun, assert_one_line_error, bare_env, cli_env, run  # noqa: F401  (fixtures used here)
from ticketing.db.models import Job, JobStatus


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


async def _all_gone(pids: list[int]) -> bool:
    """True once none of `pids` runs (multiprocessing's resource tracker leaves just after its parent)."""
    async with asyncio.timeout(10):
        while [pid for pid in pids if _alive(pid)]:
            await asyncio.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _command(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return cmdline.read().replace(b"\0", b" ").decode()


async def _start(env, cwd, *args):
    server = await asyncio.create_subprocess_exec(str(TICKETING), "serve", *args, env=env, cwd=cwd,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                  start_new_session=True)
    banner = await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT)
    assert b"listening on" in banner, (banner, (await server.stderr.read())[-2000:])
    return server


async def _mails_done(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Job)
                                    .where(Job.kind == "mail.order", Job.status == JobStatus.DONE))


async def _sell_and_mail(env, cwd, sessionmaker, webinar, smtp, count: int) -> None:
    for n in range(count):
        result = await arun(["simulate", "checkout", "--webinar", str(webinar.id), "--email", f"p{n}@example.com"],
                            env, cwd)
        assert result.returncode == 0 and "order_paid" in result.stdout, result.stderr
    async with asyncio.timeout(30):
        while await _mails_done(sessionmaker) < count:
            await asyncio.sleep(0.05)
    assert sorted(str(m["To"]).rpartition("<")[2].rstrip(">") for m in smtp.messages) == \
        sorted(f"p{n}@example.com" for n in range(count))


async def test_one_command_runs_everything_and_sigterm_stops_it_all(tmp_path, cli_env, sessionmaker, smtp, backend):
    port = _free_port()
    env = {**cli_env, "TICKETING_PORT": str(port), "TICKETING_SMTP_URL": smtp.url,
           "TICKETING_BASE_URL": f"http://127.0.0.1:{port}"}
    webinar = await factories.webinar(sessionmaker)
    args = ("--processes", "2") if backend == "postgres" else ()
    server = await _start(env, tmp_path, *args)
    try:
        children = _children(server.pid)
        if backend == "postgres":
            # The worker and a second web process beside this one.
            assert len([pid for pid in children if "resource_tracker" not in _command(pid)]) == 2
        await _sell_and_mail(env, tmp_path, sessionmaker, webinar, smtp, 4)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 60)
    assert server.returncode == 0, (await server.stderr.read()).decode()[-2000:]
    assert await _all_gone(children)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_ctrl_c_stops_the_web_and_worker_processes(tmp_path, cli_env, sessionmaker, smtp):
    port = _free_port()
    env = {**cli_env, "TICKETING_PORT": str(port), "TICKETING_SMTP_URL": smtp.url,
           "TICKETING_BASE_URL": f"http://127.0.0.1:{port}"}
    webinar = await factories.webinar(sessionmaker)
    server = await _start(env, tmp_path)
    try:
        [worker] = [pid for pid in _children(server.pid) if "resource_tracker" not in _command(pid)]
        await _sell_and_mail(env, tmp_path, sessionmaker, webinar, smtp, 1)
    finally:
        os.killpg(server.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        await asyncio.wait_for(server.wait(), 60)
    assert server.returncode == 0, (await server.stderr.read()).decode()[-2000:]
    assert await _all_gone([worker])


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_dying_worker_process_stops_serve_with_one_line(tmp_path, cli_env):
    port = _free_port()
    server = await _start({**cli_env, "TICKETING_PORT": str(port)}, tmp_path)
    try:
        [worker] = [pid for pid in _children(server.pid) if "resource_tracker" not in _command(pid)]
        os.kill(worker, signal.SIGKILL)
        await asyncio.wait_for(server.wait(), 60)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
    stderr = (await server.stderr.read()).decode()
    assert server.returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith("ticketing: error: the ticketing worker process stopped")


def test_processes_on_sqlite_is_refused_in_one_line(tmp_path, bare_env):
    line = assert_one_line_error(run(["serve", "--processes", "2"], bare_env, tmp_path))
    assert "--processes needs PostgreSQL" in line


def test_start_up_objects_are_left_out_of_full_collections():
    from ticketing.serving import _freeze_start_up

    gc.unfreeze()
    try:
        asyncio.run(_freeze_start_up(None))
        # Everything alive at start-up now sits where a full collection no longer walks it.
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
