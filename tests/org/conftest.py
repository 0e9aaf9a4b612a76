"""The console over HTTP: an organizer signed in through a real sign-in link."""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.accounts import signin

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def sign_in(client: TestClient, sessionmaker: async_sessionmaker[AsyncSession], email: str) -> None:
    """Sign `client` in as the organizer with `email`, through a link and its confirm button."""
    async with sessionmaker.begin() as session:
        organizers = await signin.organizers_with_email(session, email)
        token = await signin.issue_token(session, organizers[0].id)
    page = await client.get(f"/org/login/{token}")
    assert page.status == 200
    response = await client.post(f"/org/login/{token}", data={"csrf_token": csrf_of(await page.text())},
                                 allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/org"


@pytest.fixture
def signed_in(sessionmaker):
    async def do(client: TestClient, email: str) -> None:
        await sign_in(client, sessionmaker, email)

    return do


@pytest.fixture
async def console(make_settings):
    """The app with its job worker on a real loopback port whose TICKETING_BASE_URL is that
    port, for a browser; yields the base URL and the settings (the dev mail sink is in their var dir)."""
    from aiohttp.test_utils import TestServer

    from ticketing.app import create_app

    probe = TestServer(create_app(make_settings()), host="127.0.0.1")
    await probe.start_server()
    port = probe.port
    await probe.close()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}")
    server = TestServer(create_app(settings, worker=True), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{port}", settings
    finally:
        await server.close()
