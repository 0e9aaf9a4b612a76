"""One device per ticket over HTTP: the move that ends the old device's stay through a stand-in for
jitsi-meet's mod_muc_kick_participant, and the edges of the move link."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update

from tests.access.conftest import SECRET, add_ticket
from tests.attendance import prosody as p
from tests.attendance.conftest import SYSTEM_KID, live_webinar, move_link_in, sunk_mails
from tests.buyer.conftest import html_of, profiled_organizer, text_of
from ticketing.access import devices as claims
from ticketing.attendance import devices
from ticketing.attendance.events import parse
from ticketing.attendance.kick import KICK
from ticketing.db import utcnow
from ticketing.db.models import DeviceMove, Job, JobStatus
from ticketing.settings import SettingsError


def _cookie(response) -> str:
    morsel = response.cookies[claims.COOKIE]
    return f"{claims.COOKIE}={morsel.value}"


async def _enter(client, code: str, cookie: str | None = None):
    """Open the link as the browser holding `cookie` (None: a browser never seen)."""
    client.session.cookie_jar.clear()  # each call is its own browser: only the cookie given is sent
    headers = {"Cookie": cookie} if cookie else {}
    return await client.get(f"/j/{code}", headers=headers, allow_redirects=False)


@pytest.fixture
def kick_settings(make_settings, kick_standin, system_keys):
    return make_settings(jitsi_app_secret=SECRET, jitsi_url="https://meet.example.com/acme",
                         jitsi_kick_url=kick_standin.url, jitsi_system_key_file=str(system_keys[0]),
                         jitsi_system_key_id=SYSTEM_KID)


async def test_moving_asks_jitsi_to_remove_the_old_device(kick_settings, start_client, sessionmaker, make_worker,
                                                          kick_standin, system_keys, var_dir):
    settings = kick_settings
    client = await start_client(settings)
    webinar, _ = await live_webinar(sessionmaker, one_device=True)
    ticket, code = await add_ticket(sessionmaker, webinar)

    first = await _enter(client, code)
    assert first.status == 302 and first.headers["Location"].startswith(f"https://meet.example.com/acme/{webinar.room}?jwt=")
    device_a = _cookie(first)
    # This deployment's events carry the occupant's nick.
    occupant = p.occupant("f00dfeed-0000@meet.example.com/res", utcnow(), nick="f00dfeed", **p.user(str(ticket.id)))
    await p.post(client, settings.jitsi_events_secret, p.joined(webinar.room, occupant, 1))
    assert (await _enter(client, code, device_a)).status == 302

    second = await _enter(client, code)
    assert second.status == 409
    device_b = _cookie(second)
    for _ in range(2):  # pressed twice: one mail
        response = await client.post(f"/j/{code}/move", headers={"Cookie": device_b})
        assert response.status == 200 and "Check your email" in await response.text()
    await make_worker(settings).run_until_idle()
    [mail] = sunk_mails(var_dir)
    path = urlsplit(move_link_in(mail)).path
    # The dev mail page offers the move link as it offers join links.
    [name] = [f.name for f in (var_dir / "mail").glob("*.eml")]
    shown = await (await client.get(f"/dev/mail/{name}")).text()
    assert f'<a class="button" href="{move_link_in(mail)}">' in shown
    client.session.cookie_jar.clear()
    page = await client.get(path)  # another browser, or a mail scanner: a page, the link not used up
    assert page.status == 200 and "Move my ticket here and join" in await page.text()

    moved = await client.post(path, headers={"Cookie": device_b}, allow_redirects=False)
    assert moved.status == 303 and f"/{webinar.room}?jwt=" in moved.headers["Location"]
    async with sessionmaker() as session:
        move = await session.scalar(select(DeviceMove))
    assert move.outcome == "kick_queued"

    now = utcnow()
    await make_worker(settings).run_until_idle(now=now)
    [call] = kick_standin.calls
    assert call.method == "PUT" and call.query == {"room": webinar.room, "prefix": "acme"}
    assert call.content_type == "application/json" and call.body == {"participantId": "f00dfeed"}
    token = call.authorization.removeprefix("Bearer ")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": SYSTEM_KID}
    public = serialization.load_pem_public_key(system_keys[1].read_bytes())
    claims = jwt.decode(token, public, algorithms=["RS256"], audience=settings.jitsi_audience,
                        issuer=settings.jitsi_app_id, options={"require": ["room", "exp", "nbf"]})
    assert claims["room"] == webinar.room
    # The new browser re-enters freely; the old one is now the other device while the ticket is in.
    assert (await _enter(client, code, device_b)).status == 302
    assert (await _enter(client, code, device_a)).status == 409


async def test_a_kick_that_fails_is_retried(kick_settings, start_client, sessionmaker, make_worker, kick_standin):
    client = await start_client(kick_settings)
    webinar, _ = await live_webinar(sessionmaker, one_device=True)
    ticket, code = await add_ticket(sessionmaker, webinar)
    device_a = _cookie(await _enter(client, code))
    occupant = p.occupant("x@meet.example.com/r", utcnow(), nick="nick0001", **p.user(str(ticket.id)))
    await p.post(client, kick_settings.jitsi_events_secret, p.joined(webinar.room, occupant, 1))
    assert device_a
    async with sessionmaker.begin() as session:
        from ticketing.db.models import Ticket

        row = await session.get(Ticket, ticket.id)
        await devices.request_move(session, row, webinar, None, now=utcnow())
    job = None
    async with sessionmaker() as session:
        job = await session.scalar(select(Job).where(Job.kind == devices.MOVE_MAIL))
    token = job.payload["code"]
    device_b = _cookie(await _enter(client, code))
    assert (await client.post(f"/move/{token}", headers={"Cookie": device_b}, allow_redirects=False)).status == 303
    kick_standin.answers = [503]
    await make_worker(kick_settings).run_until_idle(now=utcnow())
    async with sessionmaker() as session:
        kick = await session.scalar(select(Job).where(Job.kind == KICK))
    assert kick.status == JobStatus.QUEUED and kick.attempts == 1 and "503" in kick.last_error


async def test_move_link_edges(make_settings, start_client, sessionmaker, make_worker, var_dir):
    settings = make_settings(jitsi_app_secret=SECRET)
    client = await start_client(settings)
    webinar, _ = await live_webinar(sessionmaker, one_device=True)
    ticket, code = await add_ticket(sessionmaker, webinar)
    assert (await client.get("/move/" + "x" * 43)).status == 404
    assert (await client.post("/move/" + "x" * 43)).status == 404
    assert (await client.post("/j/" + "y" * 43 + "/move")).status == 404
    response = await client.post(f"/j/{code}/move")
    assert response.status == 200
    await make_worker(settings).run_until_idle()
    path = urlsplit(move_link_in(sunk_mails(var_dir)[0])).path
    async with sessionmaker.begin() as session:
        await session.execute(update(DeviceMove).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    response = await client.get(path)
    assert response.status == 410 and "expired" in await response.text()
    assert (await client.post(path, allow_redirects=False)).status == 410
    # Webinars without one_device never refuse a second browser.
    other, _ = await live_webinar(sessionmaker)
    _, other_code = await add_ticket(sessionmaker, other)
    for _ in range(2):
        assert (await _enter(client, other_code)).status == 302
    assert (await client.post(f"/j/{other_code}/move")).status == 409


# language: subject, what both parts say, the footer's organizer line and imprint link
MOVE_MAILS = {
    "en": ("Use your ticket on a new device: Widgets 101",
           ("If that was you, open this link on the device you want to use:", "It works once, for 30 minutes.",
            "If it was not you, ignore this mail"),
           "Organized by Widget Academy.", "Imprint"),
    "de": ("Ihr Ticket auf einem neuen Gerät nutzen: Widgets 101",
           ("Wenn Sie das waren, öffnen Sie diesen Link auf dem Gerät, das Sie nutzen möchten:",
            "Der Link funktioniert einmal, 30 Minuten lang.", "Wenn Sie das nicht waren, ignorieren Sie diese E-Mail"),
           "Veranstaltet von Widget Academy.", "Impressum"),
}


@pytest.mark.parametrize("language", sorted(MOVE_MAILS))
async def test_the_move_mail_speaks_the_webinars_language_and_answers_to_the_organizer(
        language, make_settings, smtp, start_client, sessionmaker, make_worker):
    settings = make_settings(jitsi_app_secret=SECRET, smtp_url=smtp.url)
    client = await start_client(settings)
    owner, _ = await profiled_organizer(sessionmaker)
    webinar, _ = await live_webinar(sessionmaker, owner, one_device=True, title="Widgets 101", language=language)
    _, code = await add_ticket(sessionmaker, webinar, name="Ann Attendee", email="ann@example.com")
    assert (await client.post(f"/j/{code}/move")).status == 200
    await make_worker(settings).run_until_idle()

    [message] = smtp.to("ann@example.com")
    subject, sentences, organized, imprint = MOVE_MAILS[language]
    assert message["Subject"] == subject
    [answer] = message["Reply-To"].addresses
    assert (answer.display_name, answer.addr_spec) == ("Widget Academy", "help@widgets.example")
    text, html = text_of(message), html_of(message)
    assert f'<html lang="{language}">' in html
    link = move_link_in(message)
    assert f'href="{link}"' in html
    for body in (text, html):
        assert all(sentence in body for sentence in sentences)
        assert organized in body and "help@widgets.example" in body and imprint in body
        assert "https://widgets.example/imprint" in body and "https://widgets.example/terms" in body
    # The link in the mail is the one that moves the ticket: its page offers the move.
    client.session.cookie_jar.clear()
    page = await client.get(urlsplit(link).path, allow_redirects=False)
    assert page.status == 200 and "Move my ticket here and join" in await page.text()


def test_device_cookies_are_signed(settings):
    device = claims.new_device()
    value = claims.sign_device(settings, device)
    assert claims.device_from_cookie(settings, value) == device
    forged = device[:-1] + ("0" if device[-1] != "0" else "1")
    assert claims.device_from_cookie(settings, forged + value[len(device):]) is None
    assert claims.device_from_cookie(settings, device) is None
    assert claims.device_from_cookie(settings, "junk") is None


def test_the_nick_comes_from_a_nick_field_or_an_in_room_jid():
    base = {"event_name": "muc-occupant-joined", "room_name": "r1", "room_jid": "r1@conference.meet.example.com"}
    plain = parse("occupant/joined", base | {"occupant": {"occupant_jid": "u@meet.example.com/res", "joined_at": 1_800_000_000}})
    assert plain.occupant.nick is None
    in_room = parse("occupant/joined", base | {"occupant": {"occupant_jid": "r1@conference.meet.example.com/ab12cd34",
                                                            "joined_at": 1_800_000_000}})
    assert in_room.occupant.nick == "ab12cd34"


def test_the_kick_url_needs_the_system_key(tmp_path, system_keys):
    from ticketing.settings import Settings

    env = {"TICKETING_VAR_DIR": str(tmp_path), "TICKETING_JITSI_KICK_URL": "http://prosody:5280/kick-participant"}
    with pytest.raises(SettingsError, match="TICKETING_JITSI_SYSTEM_KEY_FILE: required with TICKETING_JITSI_KICK_URL"):
        Settings.from_env(env, dotenv=None)
    settings = Settings.from_env(env | {"TICKETING_JITSI_SYSTEM_KEY_FILE": str(system_keys[0]),
                                        "TICKETING_JITSI_SYSTEM_KEY_ID": SYSTEM_KID}, dotenv=None)
    assert settings.jitsi_kick_url == "http://prosody:5280/kick-participant" and settings.jitsi_end_meeting_url is None
