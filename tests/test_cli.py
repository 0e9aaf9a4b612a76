"""The real `ticketing` console script, run as a subprocess: output, exit codes, one-line errors,
and `serve` + `simulate checkout` selling tickets end to end."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests import factories
from ticketing.db import migrate
from ticketing.db.models import Order, OrderStatus, Ticket
from ticketing.organizers import organizer_for_key

TICKETING = Path(sys.executable).with_name("ticketing")
START_TIMEOUT = 60


@pytest.fixture
def bare_env(tmp_path: Path) -> dict[str, str]:
    """An environment for commands that fail before they touch a database: one backend is enough."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/unused.db", TICKETING_VAR_DIR=str(tmp_path))
    return env


@pytest.fixture
def cli_env(bare_env: dict[str, str], database_url: str, var_dir: Path) -> dict[str, str]:
    """The environment a command runs in: this test's database and var directory, nothing else."""
    return {**bare_env, "TICKETING_DATABASE_URL": database_url, "TICKETING_VAR_DIR": str(var_dir)}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `ticketing …` in `cwd` (no stray .env) and wait for it."""
    return subprocess.run([str(TICKETING), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


async def arun(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    process = await asyncio.create_subprocess_exec(str(TICKETING), *args, env=env, cwd=cwd,
                                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    return subprocess.CompletedProcess(args, process.returncode, stdout.decode(), stderr.decode())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *, code: int | None = None) -> str:
    assert result.returncode != 0, result
    if code is not None:
        assert result.returncode == code, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_help_for_every_command(tmp_path, bare_env):
    for args in (["--help"], ["serve", "--help"], ["migrate", "--help"], ["organizer", "create", "--help"],
                 ["simulate", "checkout", "--help"]):
        result = run(args, bare_env, tmp_path)
        assert result.returncode == 0, (args, result.stderr)
        assert "usage:" in result.stdout


async def test_organizer_create_prints_the_key_last(tmp_path, cli_env, sessionmaker):
    result = await arun(["organizer", "create", "--name", "Ada", "--email", "ada@example.com"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert key.startswith("tk_") and len(key) > 40 and " " not in key
    async with sessionmaker() as session:
        organizer = await organizer_for_key(session, key)
    assert organizer is not None and (organizer.name, organizer.email) == ("Ada", "ada@example.com")
    assert key not in organizer.api_key_hash


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["organizer"],
    ["organizer", "create", "--name", "Ada"],
    ["organizer", "create", "--email", "ada@example.com"],
    ["organizer", "create", "--name", "Ada", "--email", "ada@example.com", "--extra"],
    ["simulate", "checkout", "--webinar", "x", "--email", "e@example.com", "--quantity", "zero"],
    ["simulate", "checkout", "--webinar", "x", "--email", "e@example.com", "--quantity", "0"],
    ["simulate", "checkout", "--webinar", "x", "--email", "bad"],
    ["token", "--room", "widgets", "--name", "Ann", "--email", "bad"],
    ["serve", "--port"],
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, bare_env, args):
    line = assert_one_line_error(run(args, bare_env, tmp_path), code=2)
    assert line.startswith("ticketing")


def test_bad_input_exits_non_zero_with_one_line(tmp_path, bare_env):
    line = assert_one_line_error(run(["organizer", "create", "--name", "Ada", "--email", "not-an-email"],
                                     bare_env, tmp_path))
    assert "email" in line
    for webinar in (str(uuid.uuid4()), "garbage"):
        line = assert_one_line_error(run(["simulate", "checkout", "--webinar", webinar, "--email", "e@example.com"],
                                         bare_env, tmp_path))
        assert "webinar" in line or "no such" in line


@pytest.mark.parametrize(("variable", "value"), [
    ("TICKETING_PORT", "eighty"),
    ("TICKETING_DATABASE_URL", "mysql://db/x"),
    ("TICKETING_STRIPE_SECRET_KEY", "pk_test_nope"),
    ("TICKETING_JITSI_APP_SECRET", "short"),
])
def test_bad_settings_exit_non_zero_with_one_line_naming_the_variable(tmp_path, bare_env, variable, value):
    for args in (["migrate"], ["organizer", "create", "--name", "A", "--email", "a@example.com"], ["serve"]):
        line = assert_one_line_error(run(args, {**bare_env, variable: value}, tmp_path))
        assert variable in line, line


def test_a_bad_setting_in_dotenv_is_reported_too(tmp_path, bare_env):
    (tmp_path / ".env").write_text("TICKETING_LOG_FORMAT=xml\n")
    line = assert_one_line_error(run(["migrate"], bare_env, tmp_path))
    assert "TICKETING_LOG_FORMAT" in line


def test_unreachable_database_is_one_line(tmp_path, bare_env):
    env = {**bare_env, "TICKETING_DATABASE_URL": f"postgresql+asyncpg://nobody@127.0.0.1:{_free_port()}/none"}
    assert_one_line_error(run(["migrate"], env, tmp_path))
    assert_one_line_error(run(["organizer", "create", "--name", "A", "--email", "a@example.com"], env, tmp_path))


def test_migrate_brings_an_empty_database_to_head(tmp_path, cli_env, database_url):
    migrate.downgrade(database_url, "base")
    assert migrate.is_pending(database_url)
    result = run(["migrate"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not migrate.is_pending(database_url)
    again = run(["migrate"], cli_env, tmp_path)
    assert again.returncode == 0 and not migrate.is_pending(database_url)


def test_migrate_on_a_new_sqlite_file(tmp_path, bare_env):
    path = tmp_path / "fresh" / "tickets.db"
    result = run(["migrate"], {**bare_env, "TICKETING_DATABASE_URL": f"sqlite+aiosqlite:///{path}"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert path.is_file() and not migrate.is_pending(f"sqlite+aiosqlite:///{path}")


def test_serve_refuses_an_unmigrated_postgresql(tmp_path, bare_env, postgres_url):
    migrate.downgrade(postgres_url, "base")
    env = {**bare_env, "TICKETING_DATABASE_URL": postgres_url, "TICKETING_PORT": str(_free_port())}
    line = assert_one_line_error(run(["serve", "--no-worker"], env, tmp_path))
    assert "ticketing migrate" in line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_and_simulate_checkout_sell_tickets(tmp_path, cli_env, sessionmaker):
    port = _free_port()
    env = {**cli_env, "TICKETING_PORT": str(port)}
    webinar = await factories.webinar(sessionmaker, capacity=5)
    server = await asyncio.create_subprocess_exec(str(TICKETING), "serve", "--no-worker", env=env, cwd=tmp_path,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # `serve` prints its URLs once it listens.
        banner = await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT)
        assert f"listening on http://127.0.0.1:{port}" in banner.decode(), banner

        result = await arun(["simulate", "checkout", "--webinar", str(webinar.id), "--email", "sim@example.com",
                             "--quantity", "2"], env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "order_paid" in result.stdout

        async with sessionmaker() as session:
            order = await session.scalar(select(Order).where(Order.webinar_id == webinar.id))
            tickets = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.order_id == order.id))
        assert order.status == OrderStatus.PAID and order.email == "sim@example.com" and tickets == 2

        # A simulated checkout for more seats than are left is refused by the service, not sold.
        over = await arun(["simulate", "checkout", "--webinar", str(webinar.id), "--email", "sim@example.com",
                           "--quantity", "4"], env, tmp_path)
        assert over.returncode == 0 and "order_oversold" in over.stdout
        async with sessionmaker() as session:
            assert await session.scalar(select(func.count()).select_from(Ticket)) == 2
    finally:
        server.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(server.wait(), 30)
        except TimeoutError:
            server.kill()
            await server.wait()
    assert server.returncode == 0, (await server.stderr.read()).decode()[-2000:]


async def test_simulate_checkout_without_a_running_service_is_one_line(tmp_path, cli_env, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    env = {**cli_env, "TICKETING_BASE_URL": f"http://127.0.0.1:{_free_port()}"}
    result = await arun(["simulate", "checkout", "--webinar", str(webinar.id), "--email", "e@example.com"], env,
                        tmp_path)
    line = assert_one_line_error(result)
    assert "ticketing serve" in line
