"""Signing in to the console: one-time links, the session cookie, CSRF, sign-out, limits, the CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import subprocess
import sys

from sqlalchemy import select, update

from tests import factories
from tests.org.conftest import csrf_of
from ticketing.accounts import sessions, signin
from ticketing.db.models import ConsoleSession, Job, LoginToken


async def _ask_for_link(client, email: str):
    form = await client.get("/org/login")
    return await client.post("/org/login", data={"email": email, "csrf_token": csrf_of(await form.text())})


async def test_the_page_answers_the_same_for_known_and_unknown_addresses(client, sessionmaker):
    await factories.organizer(sessionmaker, email="ada@example.com")
    known = await _ask_for_link(client, "Ada@Example.com")
    unknown = await _ask_for_link(client, "nobody@example.com")
    assert known.status == unknown.status == 200
    strip = lambda html: re.sub(r"<strong>[^<]*</strong>|value=\"[^\"]*\"", "", html)  # noqa: E731
    assert strip(await known.text()) == strip(await unknown.text())
    async with sessionmaker() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "mail.signin")))
        tokens = list(await session.scalars(select(LoginToken)))
    assert len(jobs) == len(tokens) == 1
    token = jobs[0].payload["code"]
    # 256 bits from the CSPRNG; the table holds only the SHA-256 and a 15-minute life.
    assert len(token) == 43 and tokens[0].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert tokens[0].expires_at - tokens[0].created_at == dt.timedelta(minutes=15)


async def test_a_link_signs_in_once_after_a_confirmation(client, sessionmaker, start_client, settings):
    owner, _ = await factories.organizer(sessionmaker, email="ada@example.com")
    async with sessionmaker.begin() as session:
        token = await signin.issue_token(session, owner.id)

    # Opening the link (as a mail scanner would) uses nothing up.
    for _ in range(2):
        page = await client.get(f"/org/login/{token}")
        assert page.status == 200 and "Sign in" in await page.text()
    response = await client.post(f"/org/login/{token}", data={"csrf_token": csrf_of(await page.text())},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/org"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/org" in cookie and "Max-Age=43200" in cookie
    assert "Secure" not in cookie
    assert (await client.get("/org")).status == 200

    # The same link again, in another browser: used, with a way to ask for a new one.
    other = await start_client(settings)
    again = await other.get(f"/org/login/{token}")
    assert again.status == 410
    text = await again.text()
    assert "used already" in text and 'href="/org/login"' in text
    form = await other.get("/org/login")
    posted = await other.post(f"/org/login/{token}", data={"csrf_token": csrf_of(await form.text())},
                              allow_redirects=False)
    assert posted.status == 410 and "used already" in await posted.text()
    assert (await other.get("/org", allow_redirects=False)).status == 303


async def test_an_expired_or_unknown_link_says_so(client, sessionmaker):
    owner, _ = await factories.organizer(sessionmaker, email="ada@example.com")
    async with sessionmaker.begin() as session:
        token = await signin.issue_token(session, owner.id, now=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    expired = await client.get(f"/org/login/{token}")
    assert expired.status == 410 and "expired" in await expired.text()
    unknown = await client.get("/org/login/" + "x" * 43)
    assert unknown.status == 404 and "Ask for a new link" in await unknown.text()


async def test_forms_without_the_csrf_token_are_refused(client, sessionmaker, signed_in):
    await factories.organizer(sessionmaker, email="ada@example.com")
    refused = await client.post("/org/login", data={"email": "ada@example.com"})
    assert refused.status == 403 and "did not come from this site" in await refused.text()
    await signed_in(client, "ada@example.com")
    for path, data in [("/org/webinars", {"title": "Sneaky"}), ("/org/settings", {"name": "Mallory"}),
                       ("/org/keys", {"name": "stolen"}), ("/org/logout", {})]:
        response = await client.post(path, data={**data, "csrf_token": "forged"}, allow_redirects=False)
        assert response.status == 403, path
    async with sessionmaker() as session:
        assert await session.scalar(select(Job).where(Job.kind == "mail.signin")) is None
        assert list(await session.scalars(select(ConsoleSession.ended_at))) == [None]
    assert (await client.get("/org", allow_redirects=False)).status == 200


async def test_signing_out_ends_the_session_even_for_a_copied_cookie(client, sessionmaker, signed_in, start_client, settings):
    await factories.organizer(sessionmaker, email="ada@example.com")
    await signed_in(client, "ada@example.com")
    copied = {c.key: c.value for c in client.session.cookie_jar}
    page = await client.get("/org")
    out = await client.post("/org/logout", data={"csrf_token": csrf_of(await page.text())}, allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/org/login"
    assert (await client.get("/org", allow_redirects=False)).headers["Location"] == "/org/login"
    thief = await start_client(settings)
    thief.session.cookie_jar.update_cookies(copied)
    response = await thief.get("/org", allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/org/login"


async def test_the_cookie_is_secure_behind_https(start_client, make_settings, sessionmaker):
    client = await start_client(make_settings(base_url="https://tickets.example.com"))
    await factories.organizer(sessionmaker, email="ada@example.com")
    async with sessionmaker.begin() as session:
        organizers = await signin.organizers_with_email(session, "ada@example.com")
        token = await signin.issue_token(session, organizers[0].id)
    page = await client.get(f"/org/login/{token}")
    # aiohttp's test client keeps Secure cookies off plain http; read the header itself.
    assert "Secure" in page.headers["Set-Cookie"]


def test_a_session_ends_after_twelve_idle_hours():
    cookie: dict = {}
    sid = __import__("uuid").uuid4()
    sessions.sign_in(cookie, sid, now=1_000_000)
    assert sessions.signed_in_as(cookie, now=1_000_000 + 11 * 3600) == sid  # touched: idle time starts again
    assert sessions.signed_in_as(cookie, now=1_000_000 + 22 * 3600) == sid
    assert sessions.signed_in_as(cookie, now=1_000_000 + 34 * 3600 + 1) is None
    assert cookie == {}


async def test_sign_in_requests_are_rate_limited_per_email_and_address(client, sessionmaker):
    await factories.organizer(sessionmaker, email="ada@example.com")
    statuses = [(await _ask_for_link(client, "ada@example.com")).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    statuses = [(await _ask_for_link(client, f"x{i}@example.com")).status for i in range(7)]
    assert statuses[:6] == [200] * 6 and statuses[6] == 429  # 10 per minute from one address in all
    async with sessionmaker() as session:
        assert len(list(await session.scalars(select(LoginToken)))) == 3


async def test_a_link_from_the_command_line(sessionmaker, database_url, var_dir, tmp_path, client):
    await factories.organizer(sessionmaker, email="ada@example.com")
    env = {"PATH": "/usr/bin:/bin", "TICKETING_DATABASE_URL": database_url, "TICKETING_VAR_DIR": str(var_dir),
           "TICKETING_BASE_URL": str(client.make_url("")).rstrip("/")}
    done = subprocess.run([sys.executable, "-m", "ticketing", "organizer", "login-link", "--email", "ada@example.com"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/org/login/[A-Za-z0-9_-]{43}", link)
    token = link.rsplit("/", 1)[1]
    page = await client.get(f"/org/login/{token}")
    assert page.status == 200
    await client.post(f"/org/login/{token}", data={"csrf_token": csrf_of(await page.text())})
    assert (await client.get("/org", allow_redirects=False)).status == 200

    unknown = subprocess.run([sys.executable, "-m", "ticketing", "organizer", "login-link", "--email", "bob@example.com"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == ["ticketing: error: no organizer signs in with bob@example.com"]


async def test_the_sign_in_mail_is_sent_while_the_link_works_and_skipped_after(make_settings, sessionmaker,
                                                                               make_worker, smtp):
    settings = make_settings(smtp_url=smtp.url)
    await factories.organizer(sessionmaker, name="Ada <Organizer>", email="ada@example.com")
    async with sessionmaker.begin() as session:
        await signin.request_link(session, "ada@example.com")
    worker = make_worker(settings)
    assert await worker.run_until_idle() == 1
    [mail] = smtp.messages
    assert mail["Subject"] == "Your sign-in link for the organizer console"
    assert mail["To"].addresses[0].addr_spec == "ada@example.com"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    [link] = re.findall(r"http://\S+/org/login/[A-Za-z0-9_-]{43}", text)
    assert f'href="{link}"' in html and "Ada &lt;Organizer&gt;" in html and "15 minutes" in text
    async with sessionmaker() as session:
        job = await session.scalar(select(Job).where(Job.kind == "mail.signin"))
    assert "code" not in job.payload  # the plain token does not outlive its mail

    # A link used (or expired) before its mail's turn is not mailed.
    async with sessionmaker.begin() as session:
        await signin.request_link(session, "ada@example.com")
        await session.execute(update(LoginToken).where(LoginToken.used_at.is_(None))
                              .values(used_at=dt.datetime.now(dt.UTC)))
    assert await worker.run_until_idle() == 1
    assert len(smtp.messages) == 1


async def test_the_sign_in_mail_speaks_the_consoles_language(make_settings, sessionmaker, make_worker, smtp, client):
    """The sign-in page's language (the browser's) for an organizer who chose none; their own
    choice otherwise."""
    settings = make_settings(smtp_url=smtp.url)
    await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    form = await client.get("/org/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
    asked = await client.post("/org/login", headers={"Accept-Language": "de-DE,de;q=0.9"},
                              data={"email": "ada@example.com", "csrf_token": csrf_of(await form.text())})
    assert asked.status == 200 and "Sehen Sie in Ihr Postfach" in await asked.text()
    worker = make_worker(settings)
    assert await worker.run_until_idle() == 1
    [mail] = smtp.messages
    assert mail["Subject"] == "Ihr Anmeldelink für die Veranstalterkonsole"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    assert "Hallo Ada," in text and "15 Minuten" in text and '<html lang="de">' in html and ">Anmelden</a>" in html

    # Her own choice of English wins over a German browser.
    async with sessionmaker.begin() as session:
        [organizer] = await signin.organizers_with_email(session, "ada@example.com")
        organizer.console_language = "en"
        await signin.request_link(session, "ada@example.com", language="de")
    assert await worker.run_until_idle() == 1
    assert smtp.messages[-1]["Subject"] == "Your sign-in link for the organizer console"
