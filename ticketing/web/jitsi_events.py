"""POST /jitsi/events/…: Prosody's event_sync_component posts, checked for the bearer secret and
handed to the attendance module. Answers are JSON and quick; only an outage answers 5xx, the
one status the component retries on."""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator

from aiohttp import web

from ticketing.attendance.events import KINDS, BadEvent
from ticketing.attendance.intake import EventIntake
from ticketing.errors import Unavailable
from ticketing.web.keys import METRICS, SESSIONMAKER, SETTINGS
from ticketing.web.responses import json_response

routes = web.RouteTableDef()
# A destroyed room lists every occupant it had; a large webinar's list passes the app's 1 MiB.
MAX_EVENT_BYTES = 16 * 1024 * 1024
INTAKE = web.AppKey("attendance_intake", EventIntake)


async def intake(app: web.Application) -> AsyncIterator[None]:
    """The group-commit writer for events, for as long as the app runs (after the database opens)."""
    app[INTAKE] = EventIntake(app[SESSIONMAKER])
    app[INTAKE].start()
    yield
    await app[INTAKE].stop()


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    response = json_response({"error": {"code": code, "message": message}}, status=status)
    response.headers.update(headers)
    return response


def _authorized(header: str, secret: str) -> bool:
    scheme, _, given = header.partition(" ")
    # Compared in constant time, as bytes, whatever the header holds.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), secret.encode())


async def _event(request: web.Request, kind: str) -> web.Response:
    secret = request.app[SETTINGS].jitsi_events_secret
    if secret is None:
        return _error(404, "not_found", "attendance events are not enabled (TICKETING_JITSI_EVENTS_SECRET is unset)")
    if not _authorized(request.headers.get("Authorization", ""), secret):
        return _error(401, "unauthorized", "send the events secret as Authorization: Bearer <secret>",
                      **{"WWW-Authenticate": "Bearer"})
    if request.content_type != "application/json":
        return _error(415, "unsupported_media_type", "events are sent as application/json")
    if (request.content_length or 0) > MAX_EVENT_BYTES:
        return _error(413, "body_too_large", f"an event is at most {MAX_EVENT_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_EVENT_BYTES:
            return _error(413, "body_too_large", f"an event is at most {MAX_EVENT_BYTES} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting too deep for the parser, as read_json
        return _error(400, "bad_request", "the body is not valid JSON")
    try:
        outcome = await request.app[INTAKE].submit(kind, body)
    except BadEvent as error:
        request.app[METRICS].webhook_events.labels(f"jitsi.{kind}", "bad_payload").inc()
        return _error(422, "invalid", str(error))
    except Unavailable as error:
        request.app[METRICS].webhook_events.labels(f"jitsi.{kind}", "unavailable").inc()
        return _error(503, "unavailable", error.message)
    request.app[METRICS].webhook_events.labels(f"jitsi.{kind}", outcome).inc()
    return json_response({"received": True, "outcome": outcome})


def _handler(kind: str):
    async def handle(request: web.Request) -> web.Response:
        return await _event(request, kind)

    handle.__doc__ = f"The component's {KINDS[kind]} event."
    return handle


for _kind in KINDS:
    routes.post(f"/jitsi/events/{_kind}")(_handler(_kind))
