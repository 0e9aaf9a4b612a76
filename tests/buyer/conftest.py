"""The buyer's side as a person meets it: a live server on a real port (its base URL is that
port, so mailed links work), a Jitsi stand-in to land in, an organizer with a full profile."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import update

from tests import factories
from ticketing.app import create_app
from ticketing.db.models import Organizer
from ticketing.settings import Settings

SECRET = "buyer-tests-secret-" + "9" * 32


@dataclasses.dataclass
class Live:
    url: str
    settings: Settings


@pytest.fixture
async def live(make_settings, jitsi_standin) -> Live:
    """The app in dev mode (test payments, mail in the dev sink) on a loopback port it knows."""
    probe = TestServer(create_app(make_settings()), host="127.0.0.1")
    await probe.start_server()
    port = probe.port
    await probe.close()
    settings = make_settings(base_url=f"http://127.0.0.1:{port}", jitsi_url=jitsi_standin[0], jitsi_app_secret=SECRET)
    server = TestServer(create_app(settings), host="127.0.0.1", port=port)
    await server.start_server()
    yield Live(f"http://127.0.0.1:{port}", settings)
    await server.close()


async def profiled_organizer(sessionmaker, *, name: str = "Widget Academy"):
    """An organizer whose profile buyers see: display name, contact address, imprint and terms."""
    organizer, key = await factories.organizer(sessionmaker, name=name, email="signin@widgets.example")
    async with sessionmaker.begin() as session:
        await session.execute(update(Organizer).where(Organizer.id == organizer.id).values(
            contact_email="help@widgets.example", imprint_url="https://widgets.example/imprint",
            terms_url="https://widgets.example/terms"))
    return organizer, key


def sink(var_dir: Path) -> list[email.message.EmailMessage]:
    """The mails the dev sink wrote, oldest first, parsed as a mail client would."""
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in sorted((var_dir / "mail").glob("*.eml"))]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_of(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()
