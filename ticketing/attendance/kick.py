"""Ending the old device's stay after a ticket moved, through jitsi-meet's `mod_muc_kick_participant`.

`PUT {TICKETING_JITSI_KICK_URL}?room={room}` (plus `&prefix={tenant}` when rooms live under a
tenant) with `Content-Type: application/json`, the body `{"participantId": "<nick>"}` and
`Authorization: Bearer <system token>`: the same short-lived RS256 token, key pair and key
repository (`prosody_password_public_key_repo_url`) as the end-meeting call. Prosody answers
200 when it removed the occupant and 404 when no such room or occupant is there (gone already).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from ticketing.access.end_meeting import REQUEST_TIMEOUT, Outcome, classify, system_token
from ticketing.access.keys import load_private_key
from ticketing.db import utcnow
from ticketing.db.models import Webinar
from ticketing.jobs import NewJob, enqueue_many
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

KICK = "jitsi.kick_participant"


class KickUnavailable(Exception):
    """Jitsi's kick-participant endpoint could not be reached or failed; the job tries again."""


@functools.cache
def _load(path: Path) -> RSAPrivateKey:
    return load_private_key(path, "JITSI_SYSTEM_KEY_FILE")


def kick_key(settings: Settings) -> RSAPrivateKey | None:
    """The system token's key when kicking is configured, loaded once; None otherwise."""
    if settings.jitsi_kick_url is None or settings.jitsi_system_key_file is None:
        return None
    return _load(settings.jitsi_system_key_file)


def tenant(settings: Settings) -> str | None:
    """The tenant of TICKETING_JITSI_URL (`https://meet.example.com/acme` → `acme`), if any."""
    return urlsplit(settings.jitsi_url).path.strip("/").split("/")[0].lower() or None


def kick_request(settings: Settings, key: RSAPrivateKey, *, room: str, participant_id: str,
                 now: dt.datetime) -> tuple[URL, dict[str, str], dict[str, str]]:
    """(URL, headers, JSON body) of the call that removes `participant_id` from `room`."""
    if settings.jitsi_kick_url is None:
        raise ValueError("TICKETING_JITSI_KICK_URL is not set")
    query = {"room": room.lower()}
    if tenant(settings):
        query["prefix"] = tenant(settings)
    url = URL(settings.jitsi_kick_url).update_query(query)
    headers = {"Authorization": f"Bearer {system_token(settings, key, room=room, now=now)}"}
    return url, headers, {"participantId": participant_id}


async def queue_kicks(session: AsyncSession, settings: Settings, webinar: Webinar, nicks: Iterable[str], *,
                      move_id: uuid.UUID, now: dt.datetime) -> bool:
    """Queue one kick per known nick when kicking is configured; False when none was queued."""
    nicks = sorted(set(nicks))
    if settings.jitsi_kick_url is None or not nicks:
        return False
    await enqueue_many(session, [
        NewJob(KICK, {"webinar_id": str(webinar.id), "room": webinar.room, "participant_id": nick,
                      "move_id": str(move_id)}, due_at=now, dedupe_key=f"{KICK}:{move_id}:{nick}"[:255])
        for nick in nicks
    ])
    return True


@job(KICK)
async def kick_participant(ctx: JobContext, payload: dict[str, Any], *, now: dt.datetime | None = None) -> None:
    """Ask Jitsi to remove the old device's occupant: 2xx or 404 is done, 5xx and timeouts
    retry, any other answer parks the job with the reason."""
    room, participant = payload.get("room"), payload.get("participant_id")
    if not isinstance(room, str) or not isinstance(participant, str) or not room or not participant:
        raise PermanentError("malformed payload: room or participant_id missing")
    key = kick_key(ctx.settings)
    if key is None:
        logger.info("kick skipped: TICKETING_JITSI_KICK_URL is no longer set", extra={"room": room})
        return
    url, headers, body = kick_request(ctx.settings, key, room=room, participant_id=participant, now=now or utcnow())
    try:
        async with ctx.http.put(url, json=body, headers=headers, timeout=REQUEST_TIMEOUT,
                                allow_redirects=False) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        raise KickUnavailable(f"{type(error).__name__}: {error}") from None
    fields = {"room": room, "status": status, "move_id": payload.get("move_id")}
    match classify(status):
        case Outcome.ENDED:
            logger.info("old device removed from the room", extra=fields)
        case Outcome.ABSENT:
            logger.info("old device already gone from the room", extra=fields)
        case Outcome.RETRY:
            raise KickUnavailable(f"Jitsi's kick-participant endpoint answered {status}")
        case Outcome.REFUSED:
            raise PermanentError(f"Jitsi's kick-participant endpoint answered {status} for room {room} "
                                 "(check the URL, TICKETING_JITSI_SYSTEM_KEY_ID and Prosody's "
                                 "prosody_password_public_key_repo_url)")
