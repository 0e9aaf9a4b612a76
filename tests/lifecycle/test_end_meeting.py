"""Ending the Jitsi conference when a webinar's access ends, against a local stand-in for
Prosody's end-meeting endpoint (mod_muc_end_meeting): the call, its system token, retries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives import serialization

from tests import factories
from tests.access.conftest import write_key_pair
from tests.lifecycle.conftest import jobs_of
from ticketing.access.end_meeting import END_MEETING, SYSTEM_TOKEN_TTL, build_request, conference_jid, system_key
from ticketing.db import utcnow
from ticketing.db.models import JobStatus
from ticketing.lifecycle.webinars import expire
from ticketing.settings import Settings, SettingsError

SYSTEM_KID = "ticketing-system/2030-01"


@dataclasses.dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None


class ProsodyStandin:
    """Answers POST /end-meeting like Prosody: the next status in `answers`, else 200; records each call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.answers: list[int] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(self.app)

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append(Call(request.method, request.path, dict(request.query), request.headers.get("Authorization")))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/end-meeting"))


@pytest.fixture
async def prosody() -> AsyncIterator[ProsodyStandin]:
    standin = ProsodyStandin()
    await standin.server.start_server()
    yield standin
    await standin.server.close()


@pytest.fixture(scope="module")
def system_keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The end-meeting key pair (private PEM, public PEM), made once for this module."""
    return write_key_pair(tmp_path_factory.mktemp("system-keys"), "system")


def _end_meeting_values(url: str, system_keys: tuple[Path, Path]) -> dict[str, str]:
    return {"jitsi_end_meeting_url": url, "jitsi_system_key_file": str(system_keys[0]),
            "jitsi_system_key_id": SYSTEM_KID, "jitsi_url": "https://meet.example.com"}


@pytest.fixture
def end_settings(make_settings, prosody: ProsodyStandin, system_keys) -> Settings:
    return make_settings(**_end_meeting_values(prosody.url, system_keys))


def _public_key(system_keys: tuple[Path, Path]):
    return serialization.load_pem_public_key(system_keys[1].read_bytes())


def _check_system_token(authorization: str | None, settings: Settings, system_keys, *, room: str,
                        now: dt.datetime) -> dict:
    """The Bearer token verified as Prosody's token util does, with no leeway; returns its claims."""
    assert authorization is not None and authorization.startswith("Bearer ")
    token = authorization.removeprefix("Bearer ")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": SYSTEM_KID}
    claims = jwt.decode(token, _public_key(system_keys), algorithms=["RS256"], audience=settings.jitsi_audience,
                        issuer=settings.jitsi_app_id, leeway=0,
                        options={"require": ["iss", "aud", "room", "exp", "nbf", "iat"], "strict_aud": True})
    assert claims["room"] == room and claims["sub"] == settings.jitsi_subject
    assert claims["nbf"] <= now.timestamp() < claims["exp"]
    assert claims["exp"] - claims["iat"] == SYSTEM_TOKEN_TTL.total_seconds()
    return claims


# --- the request, without HTTP ----------------------------------------------------------------


def test_the_request_names_the_conference_and_carries_a_verifiable_system_token(tmp_path, system_keys):
    settings = Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path),
                                  **{f"TICKETING_{k.upper()}": v for k, v in _end_meeting_values(
                                      "http://prosody.internal:5280/end-meeting", system_keys).items()}}, dotenv=None)
    now = utcnow()
    request = build_request(settings, system_key(settings), room="widgets-101", now=now)
    assert request.conference == "widgets-101@conference.meet.example.com"
    assert str(request.url) == ("http://prosody.internal:5280/end-meeting"
                                "?conference=widgets-101@conference.meet.example.com")
    claims = _check_system_token(request.headers["Authorization"], settings, system_keys, room="widgets-101", now=now)
    assert claims["iss"] == "ticketing" and claims["aud"] == "jitsi"


@pytest.mark.parametrize(("values", "domain"), [
    ({}, "conference.meet.jit.si"),
    ({"JITSI_URL": "https://Meet.Example.com"}, "conference.meet.example.com"),
    ({"JITSI_URL": "https://meet.example.com/Acme"}, "conference.acme.meet.example.com"),
    ({"JITSI_SUBJECT": "meet.jitsi", "JITSI_URL": "https://meet.example.com"}, "conference.meet.jitsi"),
    ({"JITSI_MUC_DOMAIN": "MUC.Meet.Example.com"}, "muc.meet.example.com"),
])
def test_the_muc_domain_follows_the_jitsi_settings(tmp_path, values, domain):
    env = {"TICKETING_VAR_DIR": str(tmp_path), **{f"TICKETING_{k}": v for k, v in values.items()}}
    settings = Settings.from_env(env, dotenv=None)
    assert settings.jitsi_muc_domain == domain
    assert conference_jid(settings, "Room-1") == f"room-1@{domain}"


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ({"JITSI_END_MEETING_URL": "http://prosody:5280/end-meeting"},
     "TICKETING_JITSI_SYSTEM_KEY_FILE: required with TICKETING_JITSI_END_MEETING_URL"),
    ({"JITSI_END_MEETING_URL": "http://prosody:5280/end-meeting", "JITSI_SYSTEM_KEY_FILE": "{key}"},
     "TICKETING_JITSI_SYSTEM_KEY_ID: required with TICKETING_JITSI_END_MEETING_URL"),
    ({"JITSI_SYSTEM_KEY_FILE": "{key}", "JITSI_SYSTEM_KEY_ID": "k"},
     "TICKETING_JITSI_END_MEETING_URL: required with TICKETING_JITSI_SYSTEM_KEY_FILE and _KEY_ID"),
    ({"JITSI_SYSTEM_KEY_ID": "k"},
     "TICKETING_JITSI_END_MEETING_URL: required with TICKETING_JITSI_SYSTEM_KEY_FILE and _KEY_ID"),
    ({"JITSI_END_MEETING_URL": "prosody:5280/end-meeting", "JITSI_SYSTEM_KEY_FILE": "{key}", "JITSI_SYSTEM_KEY_ID": "k"},
     "TICKETING_JITSI_END_MEETING_URL: must be a https:// or http:// URL with a host"),
    ({"JITSI_END_MEETING_URL": "http://prosody:5280/end-meeting", "JITSI_SYSTEM_KEY_FILE": "{missing}",
      "JITSI_SYSTEM_KEY_ID": "k"},
     "TICKETING_JITSI_SYSTEM_KEY_FILE: no readable file"),
    ({"JITSI_END_MEETING_URL": "http://prosody:5280/end-meeting", "JITSI_SYSTEM_KEY_FILE": "{key}",
      "JITSI_SYSTEM_KEY_ID": "login", "JITSI_PRIVATE_KEY_FILE": "{key}", "JITSI_KEY_ID": "login"},
     "TICKETING_JITSI_SYSTEM_KEY_ID: must differ from TICKETING_JITSI_KEY_ID"),
    ({"JITSI_MUC_DOMAIN": "conference..example.com"}, "TICKETING_JITSI_MUC_DOMAIN: must be a domain name"),
])
def test_bad_end_meeting_settings_fail_with_one_line(tmp_path, system_keys, values, message):
    env = {"TICKETING_VAR_DIR": str(tmp_path)}
    env.update({f"TICKETING_{k}": v.format(key=system_keys[0], missing=tmp_path / "nope.pem") for k, v in values.items()})
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env, dotenv=None)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_bad_system_key_file_stops_the_start(tmp_path, system_keys):
    env = {"TICKETING_VAR_DIR": str(tmp_path), "TICKETING_JITSI_END_MEETING_URL": "http://prosody:5280/end-meeting",
           "TICKETING_JITSI_SYSTEM_KEY_FILE": str(system_keys[1]), "TICKETING_JITSI_SYSTEM_KEY_ID": SYSTEM_KID}
    settings = Settings.from_env(env, dotenv=None)  # a public key where the private one belongs
    with pytest.raises(SettingsError, match=r"^TICKETING_JITSI_SYSTEM_KEY_FILE: .* is not a PEM private key"):
        system_key(settings)
    assert system_key(Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path)}, dotenv=None)) is None


# --- queued when access ends, and the call itself --------------------------------------------


async def test_the_sweep_queues_one_job_and_the_job_ends_the_conference(
        end_settings, sessionmaker, make_context, make_worker, prosody, system_keys):
    webinar = await factories.webinar(sessionmaker, room="widgets-101")
    await factories.webinar(sessionmaker, starts_at=(webinar.starts_at + dt.timedelta(days=1)).isoformat(),
                            ends_at=(webinar.ends_at + dt.timedelta(days=1)).isoformat())  # still on then
    ctx = await make_context(end_settings)
    after = webinar.ends_at + dt.timedelta(minutes=end_settings.join_grace_minutes, seconds=1)

    await expire(ctx, now=webinar.ends_at)  # not over yet: nothing to end
    assert await jobs_of(sessionmaker, END_MEETING) == []
    await expire(ctx, now=after)
    await expire(ctx, now=after + dt.timedelta(minutes=1))  # the next sweep ends nothing new
    [queued] = await jobs_of(sessionmaker, END_MEETING)
    assert queued.payload == {"webinar_id": str(webinar.id)} and queued.due_at == after
    assert queued.dedupe_key == f"{END_MEETING}:{webinar.id}"

    assert await make_worker(end_settings).run_until_idle(now=after) >= 1
    [call] = prosody.calls
    assert (call.method, call.path, call.query) == (
        "POST", "/end-meeting", {"conference": "widgets-101@conference.meet.example.com"})
    _check_system_token(call.authorization, end_settings, system_keys, room="widgets-101", now=utcnow())
    [done] = await jobs_of(sessionmaker, END_MEETING)
    assert done.status == JobStatus.DONE


async def test_cancelling_queues_one_job_and_the_job_ends_the_conference(
        end_settings, start_client, sessionmaker, make_worker, prosody, system_keys):
    client = await start_client(end_settings)
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner, room="cancelled-talk")
    response = await client.post(f"/api/webinars/{webinar.id}/cancel", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, await response.text()
    [queued] = await jobs_of(sessionmaker, END_MEETING)
    assert queued.payload == {"webinar_id": str(webinar.id)}

    await make_worker(end_settings).run_until_idle()
    [call] = prosody.calls
    assert call.query == {"conference": "cancelled-talk@conference.meet.example.com"}
    _check_system_token(call.authorization, end_settings, system_keys, room="cancelled-talk", now=utcnow())
    assert [j.status for j in await jobs_of(sessionmaker, END_MEETING)] == [JobStatus.DONE]


async def test_nothing_is_queued_without_the_url(settings, client, sessionmaker, make_context):
    owner, key = await factories.organizer(sessionmaker)
    ended = await factories.webinar(sessionmaker, owner)
    cancelled = await factories.webinar(sessionmaker, owner)
    assert (await client.post(f"/api/webinars/{cancelled.id}/cancel",
                              headers={"Authorization": f"Bearer {key}"})).status == 200
    await expire(await make_context(settings), now=ended.ends_at + dt.timedelta(days=1))
    assert await jobs_of(sessionmaker, END_MEETING) == []


async def _ended_webinar_with_job(settings, sessionmaker, make_context) -> dt.datetime:
    webinar = await factories.webinar(sessionmaker)
    after = webinar.ends_at + dt.timedelta(days=1)
    await expire(await make_context(settings), now=after)
    return after


async def test_a_server_error_retries_and_no_such_conference_is_done(
        end_settings, sessionmaker, make_context, make_worker, prosody):
    now = await _ended_webinar_with_job(end_settings, sessionmaker, make_context)
    worker = make_worker(end_settings)
    prosody.answers = [500, 404]

    await worker.run_until_idle(now=now)
    [job] = await jobs_of(sessionmaker, END_MEETING)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert job.last_error == "EndMeetingUnavailable: Jitsi's end-meeting endpoint answered 500"
    assert "Bearer" not in job.last_error

    await worker.run_until_idle(now=job.due_at)
    [job] = await jobs_of(sessionmaker, END_MEETING)
    assert (job.status, job.attempts) == (JobStatus.DONE, 2)
    assert len(prosody.calls) == 2


async def test_a_refusal_parks_the_job(end_settings, sessionmaker, make_context, make_worker, prosody):
    now = await _ended_webinar_with_job(end_settings, sessionmaker, make_context)
    prosody.answers = [401]
    await make_worker(end_settings).run_until_idle(now=now)
    [job] = await jobs_of(sessionmaker, END_MEETING)
    assert (job.status, job.attempts) == (JobStatus.DEAD, 1)
    assert "answered 401" in job.last_error and "Bearer" not in job.last_error


async def test_an_unreachable_endpoint_retries(make_settings, sessionmaker, make_context, make_worker, system_keys):
    with socket.socket() as sock:  # a port nothing listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(**_end_meeting_values(f"http://127.0.0.1:{port}/end-meeting", system_keys))
    now = await _ended_webinar_with_job(settings, sessionmaker, make_context)
    await make_worker(settings).run_until_idle(now=now)
    [job] = await jobs_of(sessionmaker, END_MEETING)
    assert (job.status, job.attempts) == (JobStatus.QUEUED, 1)
    assert job.last_error.startswith("EndMeetingUnavailable: ClientConnectorError")
