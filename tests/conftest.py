"""Real databases for every test: a fresh SQLite file and a fresh PostgreSQL database each.

Each backend is migrated once per run into a template (`alembic upgrade head`); every test
gets its own copy, so tests never share rows. PostgreSQL is found or started on first use
(tests/postgres_server.py): TICKETING_TEST_POSTGRES_URL, else the server on the default
address, else a throw-away one, so no test ever skips for want of it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.postgres_server import SuitePostgres, asyncpg_dsn
from tests.smtp_sink import SmtpSink
from tests.stripe_standin import StripeStandin
from tests.tcp_proxy import TcpProxy
from ticketing.app import create_app
from ticketing.db import create_engine, create_sessionmaker, migrate
from ticketing.jobs.worker import Worker
from ticketing.settings import Settings

POSTGRES = SuitePostgres()
IN_CI = bool(os.environ.get("CI"))
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _no_ticketing_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build settings from what they pass, never from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("TICKETING_") and name != "TICKETING_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands run in-process configure the root logger; later tests get it back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("alembic", "aiohttp.access")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, value in levels.items():
        logging.getLogger(name).setLevel(value)


async def _pg_admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


def require_postgres() -> str:
    """The URL of the suite's PostgreSQL server, found or started on first use."""
    try:
        return POSTGRES.url()
    except RuntimeError as error:
        pytest.fail(str(error))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A throw-away PostgreSQL server lives exactly as long as the run."""
    POSTGRES.stop()


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if POSTGRES.source:
        terminalreporter.write_line(f"PostgreSQL tests ran against {POSTGRES.source}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    url = require_postgres()
    name = f"ticketing_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_admin(url, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {error}")
    migrate.upgrade(make_url(url).set(database=name).render_as_string(hide_password=False))
    yield name
    asyncio.run(_pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "ticketing.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def postgres_url(postgres_template: str) -> Iterator[str]:
    url = require_postgres()
    name = f"ticketing_t_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_admin(url, f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"'))
    yield make_url(url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database on each backend in turn."""
    return request.getfixturevalue(f"{backend}_url")


@pytest.fixture
def var_dir(tmp_path: Path) -> Path:
    path = tmp_path / "var"
    path.mkdir()
    return path


@pytest.fixture
def make_settings(database_url: str, var_dir: Path):
    """Settings as `Settings.from_env` builds them, from the given TICKETING_* values only."""

    def build(**values: str) -> Settings:
        env = {"TICKETING_DATABASE_URL": database_url, "TICKETING_VAR_DIR": str(var_dir)}
        env.update({f"TICKETING_{k.upper()}": v for k, v in values.items()})
        return Settings.from_env(env, dotenv=None)

    return build


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
async def start_client():
    """Start the real app for some settings behind aiohttp's test server; closed after the test."""
    clients: list[TestClient] = []

    async def start(settings: Settings) -> TestClient:
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def client(start_client, settings: Settings) -> TestClient:
    return await start_client(settings)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.fixture
async def browser():
    """Debian's headless Chromium through Playwright; skips without it, except under CI, where it fails."""
    if not CHROMIUM.is_file():
        message = f"no Chromium at {CHROMIUM} (scripts/ensure-chromium installs it)"
        if IN_CI:
            pytest.fail(f"{message}; CI needs it")
        pytest.skip(message)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def jitsi_standin():
    """The Jitsi web app on a loopback port: shows a page for any room and records each visit;
    yields its base URL and the visits."""
    from aiohttp import web

    visits: list[web.Request] = []

    async def room(request: web.Request) -> web.Response:
        visits.append(request)
        return web.Response(text="<!doctype html><html lang=en><title>Room</title><main><h1>In the room</h1></main>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/{room}", room)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/"), visits
    await server.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where page tests save their screenshots (under the run's temp dir) for people to look at."""
    return tmp_path_factory.mktemp("screenshots")


STRIPE_SECRET_KEY = "sk_test_" + "standin" + "0" * 24
STRIPE_WEBHOOK_SECRET = "whsec_" + "standin" + "1" * 24
JITSI_APP_SECRET = "jitsi-test-secret-" + "2" * 32
SESSION_KEY = "session-test-key-" + "3" * 32


@pytest.fixture
async def stripe_standin() -> AsyncIterator[StripeStandin]:
    """The Stripe API stand-in (tests/stripe_standin.py) on a real loopback port."""
    standin = StripeStandin()
    server = TestServer(standin.app, host="127.0.0.1")
    await server.start_server()
    standin.url = str(server.make_url("")).rstrip("/")
    try:
        yield standin
    finally:
        standin.release()
        await server.close()


@pytest.fixture
def stripe_settings(make_settings, stripe_standin: StripeStandin) -> Settings:
    """Settings with a Stripe key (no dev mode) whose client talks to the stand-in."""
    return make_settings(
        stripe_secret_key=STRIPE_SECRET_KEY,
        stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
        stripe_api_base=stripe_standin.url,
        jitsi_app_secret=JITSI_APP_SECRET,
        session_key=SESSION_KEY,
    )


@pytest.fixture
async def postgres_proxy(postgres_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A fresh PostgreSQL database reached through a TCP proxy the test can stop and restart;
    yields the proxy and the database URL through it."""
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    try:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    finally:
        await proxy.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server on loopback whose answers the test controls (tests/smtp_sink.py)."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
async def make_worker(sessionmaker: async_sessionmaker[AsyncSession]):
    """Build a job worker over the test's database for some settings."""
    import aiohttp

    from ticketing.jobs.registry import JobContext
    from ticketing.workers import create_worker

    clients: list[aiohttp.ClientSession] = []

    def make(settings: Settings, **options) -> Worker:
        http = aiohttp.ClientSession()
        clients.append(http)
        return create_worker(JobContext(settings=settings, sessionmaker=sessionmaker, stripe=None, http=http), **options)

    yield make
    for http in clients:
        await http.close()
