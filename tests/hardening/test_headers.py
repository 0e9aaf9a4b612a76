"""Security headers on every answer: a Content-Security-Policy with a fresh nonce on every page
(and every script of the page carrying it), Referrer-Policy, Permissions-Policy, and
`Cache-Control: no-store` on whatever carries a token or a secret link. A malformed header
line is a 400 with no stack trace in the log."""

from __future__ import annotations

import datetime as dt
import logging
import re

from tests import factories
from tests.access.conftest import SECRET, add_ticket, move_webinar
from tests.hardening.raw_http import raw_request
from tests.mail.test_delivery import buy
from tests.org.conftest import csrf_of, sign_in
from tests.seats import order_codes
from ticketing.db import utcnow

NONCE = re.compile(r"script-src 'self' 'nonce-([A-Za-z0-9_-]{20,})'")


def assert_protected(response, *, page: bool) -> str | None:
    headers = response.headers
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "camera=()" in headers["Permissions-Policy"] and "microphone=()" in headers["Permissions-Policy"]
    assert headers["Cache-Control"] == "no-store"
    if not page:
        return None
    policy = headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy.split("style-src")[0]
    found = NONCE.search(policy)
    assert found, policy
    return found.group(1)


async def assert_page(client, path: str, status: int = 200) -> str:
    response = await client.get(path, allow_redirects=False)
    assert response.status == status, (path, await response.text())
    nonce = assert_protected(response, page=True)
    html = await response.text()
    scripts = re.findall(r"<script([^>]*)>", html)
    assert all(f'nonce="{nonce}"' in attributes for attributes in scripts), (path, scripts)
    assert not re.search(r"\sstyle=|<style|\son[a-z]+=", html), path
    return nonce


async def test_every_page_has_a_policy_with_a_fresh_nonce_on_each_script(make_settings, start_client, sessionmaker):
    settings = make_settings(jitsi_app_secret=SECRET)
    client = await start_client(settings)
    organizer, _ = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, organizer)
    _, code = await add_ticket(sessionmaker, webinar)
    await buy(client, webinar, email="bea@example.com", quantity=2)
    [order_code] = (await order_codes(sessionmaker)).values()
    first = await assert_page(client, f"/w/{webinar.id}")
    second = await assert_page(client, f"/w/{webinar.id}")
    assert first != second
    for path in ("/", "/org/login", f"/j/{code}", f"/o/{order_code}", "/dev/mail"):
        await assert_page(client, path)
    await assert_page(client, "/no/such/page", 404)
    await assert_page(client, f"/j/{'x' * 43}", 404)
    await sign_in(client, sessionmaker, "ada@example.com")
    for path in ("/org", f"/org/webinars/{webinar.id}", "/org/settings", "/org/keys"):
        await assert_page(client, path)


async def test_answers_carrying_tokens_are_never_stored(make_settings, start_client, sessionmaker):
    settings = make_settings(jitsi_app_secret=SECRET)
    client = await start_client(settings)
    organizer, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, organizer, room="ada-live")
    _, code = await add_ticket(sessionmaker, webinar)
    now = utcnow()
    await move_webinar(sessionmaker, webinar, now, now + dt.timedelta(hours=1))

    joined = await client.get(f"/j/{code}", allow_redirects=False)
    assert joined.status == 302 and "jwt=" in joined.headers["Location"]
    assert_protected(joined, page=False)

    api = await client.get(f"/api/webinars/{webinar.id}/host-link", headers={"Authorization": f"Bearer {key}"})
    assert api.status == 200 and "jwt=" in (await api.json())["url"]
    assert_protected(api, page=False)

    await sign_in(client, sessionmaker, "ada@example.com")
    csrf = csrf_of(await (await client.get(f"/org/webinars/{webinar.id}")).text())
    host = await client.post(f"/org/webinars/{webinar.id}/host-link", data={"csrf_token": csrf}, allow_redirects=False)
    assert host.status == 303 and "jwt=" in host.headers["Location"]
    assert_protected(host, page=False)

    static = await client.get("/static/site.css")
    assert static.status == 200 and "no-store" not in static.headers.get("Cache-Control", "")


async def test_a_malformed_header_line_is_400_without_a_traceback(client, caplog):
    caplog.set_level(logging.DEBUG)
    for head in (b"GET / HTTP/1.1\r\nHost: x\r\nX-Note: a\x00b", b"GET / HTTP/1.1\r\nHost: x\r\nX\x00Y: 1",
                 b"GET / HTTP/1.1\r\nHost: x\r\nno colon here"):
        caplog.clear()
        answer = await raw_request(client, head)
        assert answer.status == 400
        loud = [r for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith("aiohttp.access")]
        assert loud == [], [r.getMessage() for r in loud]
        assert not [r for r in caplog.records if r.exc_info or r.exc_text]
        assert len([r for r in caplog.records if r.levelno >= logging.INFO]) <= 1
    healthy = await client.get("/healthz")
    assert healthy.status == 200
