"""Organizers through the real `ticketing organizer …` commands: one organizer per sign-in
address (in any case), list, update, remove; and the migration that makes addresses unique."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from sqlalchemy import func, select, text, update

from tests import factories
from tests.test_cli import arun, assert_one_line_error, bare_env, cli_env, run  # noqa: F401  (fixtures)
from ticketing.db import create_engine, migrate, utcnow
from ticketing.db.models import ApiKey, Organizer, Webinar, WebinarStatus
from ticketing.organizers import organizer_for_key


async def _count(sessionmaker, *where) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Organizer).where(*where))


async def test_the_readme_steps_twice_create_one_organizer_and_login_link_works(tmp_path, cli_env, sessionmaker):
    first = await arun(["organizer", "create", "--name", "Ada", "--email", "ada@example.com"], cli_env, tmp_path)
    assert first.returncode == 0, first.stderr
    again = await arun(["organizer", "create", "--name", "Ada", "--email", "Ada@Example.com"], cli_env, tmp_path)
    line = assert_one_line_error(again, code=1)
    assert "ada@example.com" in line and "already" in line
    assert again.stdout == ""
    assert await _count(sessionmaker) == 1

    link = await arun(["organizer", "login-link", "--email", "ADA@example.com"], cli_env, tmp_path)
    assert link.returncode == 0, link.stderr
    assert "/org/login/" in link.stdout.splitlines()[-1]


async def test_create_stores_the_address_lower_case(tmp_path, cli_env, sessionmaker):
    result = await arun(["organizer", "create", "--name", "Ada", "--email", "Ada.Lovelace@Example.COM"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    async with sessionmaker() as session:
        organizer = await organizer_for_key(session, result.stdout.splitlines()[-1])
    assert organizer.email == "ada.lovelace@example.com"


async def test_list_shows_every_organizer_with_its_webinars(tmp_path, cli_env, sessionmaker):
    empty = await arun(["organizer", "list"], cli_env, tmp_path)
    assert empty.returncode == 0 and "no organizers" in empty.stdout

    ada, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    bob, _ = await factories.organizer(sessionmaker, name="Bob Builder", email="bob@example.com")
    await factories.webinar(sessionmaker, ada)
    past = await factories.webinar(sessionmaker, ada)
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == past.id).values(status=WebinarStatus.ENDED))

    result = await arun(["organizer", "list"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert "SIGN-IN ADDRESS" in header and "WEBINARS" in header
    assert len(rows) == 2
    assert rows[0].split()[:4] == [str(ada.id), "ada@example.com", "2", "1"]
    assert rows[1].split()[:4] == [str(bob.id), "bob@example.com", "0", "0"]
    assert rows[1].endswith("Bob Builder")


async def test_update_changes_the_sign_in_address_and_the_name(tmp_path, cli_env, sessionmaker):
    ada, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    result = await arun(["organizer", "update", "--email", "ADA@example.com", "--new-email", "Ada@Widgets.example",
                         "--name", "Ada L."], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ada@widgets.example" in result.stdout
    async with sessionmaker() as session:
        stored = await session.get(Organizer, ada.id)
        assert (stored.email, stored.name) == ("ada@widgets.example", "Ada L.")
        assert (await organizer_for_key(session, key)).id == ada.id  # the key is untouched

    link = await arun(["organizer", "login-link", "--email", "ada@widgets.example"], cli_env, tmp_path)
    assert link.returncode == 0, link.stderr
    old = await arun(["organizer", "login-link", "--email", "ada@example.com"], cli_env, tmp_path)
    assert "no organizer" in assert_one_line_error(old, code=1)


async def test_update_refusals_are_one_line_and_change_nothing(tmp_path, cli_env, sessionmaker):
    ada, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    cases = [
        (["--email", "ada@example.com", "--new-email", "BOB@example.com", "--name", "Changed"], "already"),
        (["--email", "nobody@example.com", "--name", "X"], "no organizer"),
        (["--email", "ada@example.com"], "nothing to change"),
        (["--email", "ada@example.com", "--new-email", "not-an-address"], "email"),
    ]
    for args, expected in cases:
        line = assert_one_line_error(await arun(["organizer", "update", *args], cli_env, tmp_path))
        assert expected in line, (args, line)
    async with sessionmaker() as session:
        stored = await session.get(Organizer, ada.id)
    assert (stored.email, stored.name) == ("ada@example.com", "Ada")


async def test_remove_refuses_while_a_webinar_is_to_come_then_deletes_with_the_past_ones(tmp_path, cli_env, sessionmaker):
    ada, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    async with sessionmaker.begin() as session:
        session.add(ApiKey(organizer_id=ada.id, name="ci", prefix="tk_abcdefg", key_hash="0" * 64))
    coming = await factories.webinar(sessionmaker, ada, title="Widgets 101")
    past = await factories.webinar(sessionmaker, ada)
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == past.id).values(status=WebinarStatus.CANCELLED))

    line = assert_one_line_error(await arun(["organizer", "remove", "--email", "ada@example.com"], cli_env, tmp_path),
                                 code=1)
    assert "Widgets 101" in line and "cancel" in line
    assert await _count(sessionmaker) == 1

    # Sold out long ago and over now: nothing left to come.
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == coming.id).values(
            starts_at=utcnow() - dt.timedelta(days=3), ends_at=utcnow() - dt.timedelta(days=3, hours=-1)))
    result = await arun(["organizer", "remove", "--email", "Ada@example.com"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ada@example.com removed, with 2" in result.stdout
    assert await _count(sessionmaker) == 0
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Webinar)) == 0
        assert await session.scalar(select(func.count()).select_from(ApiKey)) == 0
        assert await organizer_for_key(session, key) is None

    gone = await arun(["organizer", "remove", "--email", "ada@example.com"], cli_env, tmp_path)
    assert "no organizer" in assert_one_line_error(gone, code=1)


def _insert_organizer(database_url: str, email: str) -> str:
    """An organizer row written as an older schema allowed (no unique address)."""
    organizer_id = uuid.uuid4()

    async def insert() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                value = organizer_id.hex if connection.dialect.name == "sqlite" else str(organizer_id)
                await connection.execute(text(
                    "INSERT INTO organizers (id, name, email, api_key_hash, created_at) "
                    "VALUES (:id, 'Ada', :email, :hash, :created)"
                ), {"id": value, "email": email, "hash": uuid.uuid4().hex + uuid.uuid4().hex, "created": utcnow()})
        finally:
            await engine.dispose()

    asyncio.run(insert())
    return organizer_id.hex


def test_migrate_reports_shared_addresses_in_one_line_and_changes_nothing(tmp_path, cli_env, database_url):
    migrate.downgrade(database_url, "0007")
    first = _insert_organizer(database_url, "ada@example.com")
    second = _insert_organizer(database_url, "Ada@Example.com")
    _insert_organizer(database_url, "Bob@Example.com")

    line = assert_one_line_error(run(["migrate"], cli_env, tmp_path), code=1)
    assert "ada@example.com: 2 organizers" in line, line
    assert first in line.replace("-", "") and second in line.replace("-", "")
    assert "UPDATE organizers SET email" in line and "migrate again" in line
    assert migrate.current_revision(database_url) == "0007"


def test_migrate_lower_cases_addresses_and_says_what_it_did(tmp_path, cli_env, database_url):
    migrate.downgrade(database_url, "0007")
    _insert_organizer(database_url, "Ada@Example.com")
    _insert_organizer(database_url, "bob@example.com")
    result = run(["migrate"], cli_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"upgraded from revision 0007 to {migrate.head(database_url)}" in result.stdout

    async def emails() -> list[str]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                return sorted((await connection.execute(text("SELECT email FROM organizers"))).scalars())
        finally:
            await engine.dispose()

    assert asyncio.run(emails()) == ["ada@example.com", "bob@example.com"]
    again = run(["migrate"], cli_env, tmp_path)
    assert again.returncode == 0 and "already at the newest revision" in again.stdout

    migrate.downgrade(database_url, "base")
    created = run(["migrate"], cli_env, tmp_path)
    assert created.returncode == 0 and f"schema created at revision {migrate.head(database_url)}" in created.stdout
