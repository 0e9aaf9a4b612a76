"""Stand-ins for the attendance tests: the Jitsi web app (where a join link lands) and Prosody's
kick-participant endpoint; webinars that are on now; the mails in the dev sink."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import ticketing.workers  # noqa: F401  (registers every job kind the worker runs)
from tests import factories
from tests.access.conftest import move_webinar, write_key_pair
from ticketing.db import utcnow

SYSTEM_KID = "ticketing-system/2030-01"


@dataclasses.dataclass
class Kick:
    method: str
    query: dict[str, str]
    content_type: str
    body: dict
    authorization: str | None


class KickStandin:
    """Answers PUT /kick-participant like jitsi-meet's module: the next status in `answers`, else 200."""

    def __init__(self) -> None:
        self.calls: list[Kick] = []
        self.answers: list[int] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(self.app)

    async def _handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read() or b"null")
        self.calls.append(Kick(request.method, dict(request.query), request.content_type, body,
                               request.headers.get("Authorization")))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/kick-participant"))


@pytest.fixture
async def kick_standin():
    standin = KickStandin()
    await standin.server.start_server()
    yield standin
    await standin.server.close()


@pytest.fixture(scope="session")
def system_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_key_pair(tmp_path_factory.mktemp("attendance-system-keys"), "system")


async def live_webinar(sessionmaker, owner=None, **options):
    """A webinar that started 10 minutes ago and lasts an hour; returns it and its organizer's key
    (None when `owner` is given)."""
    key = None
    if owner is None:
        owner, key = await factories.organizer(sessionmaker, email=f"o{uuid.uuid4().hex[:8]}@example.com")
    webinar = await factories.webinar(sessionmaker, owner, **options)
    now = utcnow().replace(microsecond=0)
    await move_webinar(sessionmaker, webinar, now - dt.timedelta(minutes=10), now + dt.timedelta(minutes=50))
    return webinar, key


def sunk_mails(var_dir: Path) -> list[EmailMessage]:
    """The mails in the dev sink, oldest first."""
    return [BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            for path in sorted((var_dir / "mail").glob("*.eml"))]


def move_link_in(message: EmailMessage) -> str:
    text = message.get_body(preferencelist=("plain",)).get_content()
    [link] = set(re.findall(r"https?://\S+/move/[A-Za-z0-9_-]+", text))
    return link
