"""Ending a webinar's Jitsi conference when its access ends, through Prosody's end-meeting endpoint.

Expired links and expired tokens keep new people out, but someone already in the room could
stay on. When `TICKETING_JITSI_END_MEETING_URL` is set, ending or cancelling a webinar queues
a `jitsi.end_meeting` job that asks Prosody (`mod_muc_end_meeting`) to destroy the room:
`POST {url}?conference={room}@{muc domain}` with `Authorization: Bearer <system token>`.

The system token is RS256, signed with a key pair of its own whose public key Prosody
fetches from `prosody_password_public_key_repo_url` as `{sha256_hex(kid)}.pem`. Prosody
checks it with the main VirtualHost's token settings: `kid`, `typ: "JWT"`, `iss` among the
accepted issuers, `aud` among the accepted audiences, a `room` claim, `exp` and `nbf`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import logging
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from ticketing.access.keys import load_private_key
from ticketing.access.tokens import CLOCK_SKEW
from ticketing.db import utcnow
from ticketing.db.models import Webinar, WebinarStatus
from ticketing.jobs import enqueue
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

END_MEETING = "jitsi.end_meeting"
# Short, because Prosody accepts a system token for every room of the deployment.
SYSTEM_TOKEN_TTL = dt.timedelta(minutes=5)
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)


class EndMeetingUnavailable(Exception):
    """Jitsi's end-meeting endpoint could not be reached or failed; the job tries again."""


class Outcome(enum.StrEnum):
    """What Prosody's answer means for the job."""

    ENDED = "ended"  # 2xx: the room is destroyed
    ABSENT = "absent"  # 404: no such room, so nobody is left in it
    RETRY = "retry"  # 5xx, 429: Prosody or a proxy in front of it is having trouble
    REFUSED = "refused"  # any other answer: the URL, the key or Prosody's settings are wrong


def classify(status: int) -> Outcome:
    """The outcome of an end-meeting call that Prosody answered with `status`."""
    if 200 <= status < 300:
        return Outcome.ENDED
    if status == 404:
        return Outcome.ABSENT
    if status >= 500 or status == 429:
        return Outcome.RETRY
    return Outcome.REFUSED


@dataclasses.dataclass(frozen=True)
class EndMeetingRequest:
    """The call Prosody expects; `headers` holds the token, so never log them."""

    url: URL
    conference: str
    headers: Mapping[str, str]


def conference_jid(settings: Settings, room: str) -> str:
    """The MUC address Prosody knows the webinar's room by: `{room}@{muc domain}`."""
    return f"{room.lower()}@{settings.jitsi_muc_domain}"


@functools.cache
def _load_system_key(path: Path) -> RSAPrivateKey:
    return load_private_key(path, "JITSI_SYSTEM_KEY_FILE")


def system_key(settings: Settings) -> RSAPrivateKey | None:
    """The system token's signing key, loaded once; None when ending meetings is off.

    Call it at start so a bad key file stops the service with one line (SettingsError).
    """
    if settings.jitsi_end_meeting_url is None or settings.jitsi_system_key_file is None:
        return None
    return _load_system_key(settings.jitsi_system_key_file)


def system_claims(settings: Settings, *, room: str, now: dt.datetime) -> dict[str, Any]:
    """The claims Prosody requires of a system token, valid for a few minutes from `now`.

    Prosody only needs a `room` claim to be present; naming the webinar's room keeps the
    token from claiming more than this one call needs.
    """
    return {
        "iss": settings.jitsi_app_id,
        "aud": settings.jitsi_audience,
        "sub": settings.jitsi_subject,
        "room": room.lower(),
        "iat": int(now.timestamp()),
        "nbf": int((now - CLOCK_SKEW).timestamp()),
        "exp": int((now + SYSTEM_TOKEN_TTL).timestamp()),
    }


def system_token(settings: Settings, key: RSAPrivateKey, *, room: str, now: dt.datetime) -> str:
    """A freshly signed RS256 system token under `TICKETING_JITSI_SYSTEM_KEY_ID`."""
    headers = {"typ": "JWT", "kid": settings.jitsi_system_key_id or ""}
    return jwt.encode(system_claims(settings, room=room, now=now), key, algorithm="RS256", headers=headers)


def build_request(settings: Settings, key: RSAPrivateKey, *, room: str, now: dt.datetime) -> EndMeetingRequest:
    """The end-meeting call for `room`, with a token minted at `now`."""
    if settings.jitsi_end_meeting_url is None:
        raise ValueError("TICKETING_JITSI_END_MEETING_URL is not set")
    conference = conference_jid(settings, room)
    url = URL(settings.jitsi_end_meeting_url).update_query(conference=conference)
    token = system_token(settings, key, room=room, now=now)
    return EndMeetingRequest(url=url, conference=conference, headers={"Authorization": f"Bearer {token}"})


async def queue_end_meeting(session: AsyncSession, settings: Settings, webinar_id: uuid.UUID, *,
                            now: dt.datetime) -> bool:
    """Queue the end-meeting call for a webinar whose access ended, once per webinar.

    Nothing happens when `TICKETING_JITSI_END_MEETING_URL` is unset; returns whether a job was queued.
    """
    if settings.jitsi_end_meeting_url is None:
        return False
    return await enqueue(session, END_MEETING, {"webinar_id": str(webinar_id)}, due_at=now,
                         dedupe_key=f"{END_MEETING}:{webinar_id}")


async def send(http: aiohttp.ClientSession, request: EndMeetingRequest) -> int:
    """POST `request`; Prosody's status code, or EndMeetingUnavailable when there is none."""
    try:
        async with http.post(request.url, headers=dict(request.headers), timeout=REQUEST_TIMEOUT,
                             allow_redirects=False) as response:
            return response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        raise EndMeetingUnavailable(f"{type(error).__name__}: {error}") from None


@job(END_MEETING)
async def end_meeting(ctx: JobContext, payload: dict[str, Any], *, now: dt.datetime | None = None) -> None:
    """Ask Jitsi to end the webinar's conference: 2xx or 404 is done, 5xx and timeouts retry,
    any other answer parks the job with the reason."""
    try:
        webinar_id = uuid.UUID(str(payload.get("webinar_id")))
    except ValueError:
        raise PermanentError(f"payload webinar_id is not an id: {payload.get('webinar_id')!r}") from None
    key = system_key(ctx.settings)
    if key is None:
        logger.info("end-meeting skipped: TICKETING_JITSI_END_MEETING_URL is no longer set",
                    extra={"webinar_id": str(webinar_id)})
        return
    async with ctx.sessionmaker() as session:
        webinar = await session.get(Webinar, webinar_id)
    if webinar is None:
        raise PermanentError(f"no webinar {webinar_id}")
    if webinar.status not in (WebinarStatus.ENDED, WebinarStatus.CANCELLED):
        logger.warning("end-meeting skipped: the webinar is still scheduled", extra={"webinar_id": str(webinar_id)})
        return
    request = build_request(ctx.settings, key, room=webinar.room, now=now or utcnow())
    status = await send(ctx.http, request)
    fields = {"webinar_id": str(webinar_id), "conference": request.conference, "status": status}
    match classify(status):
        case Outcome.ENDED:
            logger.info("Jitsi conference ended", extra=fields)
        case Outcome.ABSENT:
            logger.info("Jitsi conference already gone", extra=fields)
        case Outcome.RETRY:
            raise EndMeetingUnavailable(f"Jitsi's end-meeting endpoint answered {status}")
        case Outcome.REFUSED:
            raise PermanentError(f"Jitsi's end-meeting endpoint answered {status} for {request.conference} "
                                 "(check the URL, TICKETING_JITSI_SYSTEM_KEY_ID and Prosody's "
                                 "prosody_password_public_key_repo_url)")
