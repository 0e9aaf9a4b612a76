"""Receiving the posts of Prosody's `event_sync_component`: check their shape, keep them, apply them.

The component posts `muc-room-created`, `muc-room-destroyed`, `muc-occupant-joined` and
`muc-occupant-left` as JSON; times are Unix seconds taken by Prosody. It retries a post that
times out or answers 5xx, so the same event can come twice, and posts are not ordered.

Every accepted post is stored as it came (`jitsi_events`, deduplicated by a fingerprint of
its body) and applied in the same short transaction. Applying only ever inserts a stay keyed
by what every event about it carries (room, breakout room, occupant JID, join time) or sets
its end, so duplicates and any order of arrival end in the same rows. A post for a room that
is no webinar of ours is kept and answered 200, and changes nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import is_unavailable, utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import AttendanceSession, JitsiEvent, Ticket, Webinar, WebinarStatus
from ticketing.errors import Unavailable
from ticketing.jobs.registry import JobContext, periodic

logger = logging.getLogger(__name__)

# The URL path under {api_prefix}/events/ and the event_name the component puts in the body.
KINDS = {
    "room/created": "muc-room-created",
    "room/destroyed": "muc-room-destroyed",
    "occupant/joined": "muc-occupant-joined",
    "occupant/left": "muc-occupant-left",
}
# Multi-tenant deployments name rooms "[tenant]room".
_TENANT = re.compile(r"^\[[^\]]*\]")
_ROOM = re.compile(r"[a-z0-9][a-z0-9_-]{1,62}")
# A room is matched to the webinar using it nearest in time, and to none further than this.
MATCH_DISTANCE = dt.timedelta(hours=24)
# Stored events whose processing failed are tried again by the worker after this long.
RETRY_AFTER = dt.timedelta(minutes=1)
_YEARS = (2000, 9000)


class BadEvent(ValueError):
    """The body is not an event_sync_component event of the kind its URL names."""


@dataclasses.dataclass(frozen=True)
class Occupant:
    """One occupant as the component describes it; `user_id` is `context.user.id` of its token."""

    jid: str
    joined_at: dt.datetime
    left_at: dt.datetime | None
    user_id: str | None
    name: str | None
    email: str | None
    nick: str | None


@dataclasses.dataclass(frozen=True)
class Event:
    """A checked event: the main room's name, the breakout room (or ""), and what happened."""

    kind: str
    room: str
    space: str
    at: dt.datetime
    occupant: Occupant | None = None
    destroyed_at: dt.datetime | None = None
    occupants: tuple[Occupant, ...] = ()


def _time(value: Any, what: str) -> dt.datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadEvent(f"{what} must be Unix seconds")
    try:
        moment = dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise BadEvent(f"{what} is out of range") from None
    if not _YEARS[0] <= moment.year <= _YEARS[1]:
        raise BadEvent(f"{what} is out of range")
    return moment


def _text(value: Any, limit: int) -> str | None:
    """A user-context string as the token carried it (numbers become text), cut to the column."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _occupant(value: Any, room_jid: str | None, what: str) -> Occupant:
    if not isinstance(value, dict):
        raise BadEvent(f"{what} must be an object")
    jid = value.get("occupant_jid")
    if not isinstance(jid, str) or not jid.strip() or len(jid) > 512:
        raise BadEvent(f"{what}.occupant_jid must be a JID")
    left = value.get("left_at")
    return Occupant(
        jid=jid.strip(),
        joined_at=_time(value.get("joined_at"), f"{what}.joined_at"),
        left_at=None if left is None else _time(left, f"{what}.left_at"),
        user_id=_text(value.get("id"), 255),
        name=_text(value.get("name"), 200),
        email=_text(value.get("email"), 320),
        nick=_nick(value, jid.strip(), room_jid),
    )


def _nick(value: dict[str, Any], jid: str, room_jid: str | None) -> str | None:
    """The occupant's in-room nick, when the event tells it: a `nick` field (sent by deployments
    that add it), or an occupant JID that is the in-room address `room@muc/nick`."""
    nick = value.get("nick")
    if isinstance(nick, str) and nick.strip():
        return nick.strip()[:255]
    bare, slash, resource = jid.partition("/")
    if slash and resource and room_jid and bare.lower() == room_jid.lower():
        return resource[:255]
    return None


def room_of(name: str) -> str | None:
    """Our room name for the component's `room_name` (tenant prefix dropped), or None when it cannot be one."""
    room = _TENANT.sub("", name.strip()).lower()
    return room if _ROOM.fullmatch(room) else None


def parse(kind: str, body: Any) -> Event:
    """Check one posted body against the shape the component sends for `kind`; raises BadEvent."""
    if kind not in KINDS:
        raise BadEvent(f"unknown event kind {kind!r}")
    if not isinstance(body, dict):
        raise BadEvent("the body must be a JSON object")
    if body.get("event_name") != KINDS[kind]:
        raise BadEvent(f"event_name must be {KINDS[kind]!r} at this URL")
    room_jid = body.get("room_jid") if isinstance(body.get("room_jid"), str) else None
    room_name = body.get("room_name")
    if not isinstance(room_name, str) or not room_name.strip():
        if room_jid is None:
            raise BadEvent("room_name is missing")
        room_name = room_jid.partition("@")[0]
    breakout = body.get("is_breakout") is True
    space = ""
    if breakout:
        space = _text(body.get("breakout_room_id"), 255) or "breakout"
    # Breakout events name the main room in room_jid; only main-room JIDs reveal nicks.
    nick_room = None if breakout else room_jid
    room = room_name.strip()[:255]
    match kind:
        case "room/created":
            return Event(kind, room, space, _time(body.get("created_at"), "created_at"))
        case "room/destroyed":
            destroyed = _time(body.get("destroyed_at"), "destroyed_at")
            listed = body.get("all_occupants")
            # Lua's JSON encoder writes an empty table as {}.
            if listed is None or listed == {}:
                listed = []
            if not isinstance(listed, list):
                raise BadEvent("all_occupants must be a list")
            occupants = tuple(_occupant(o, nick_room, f"all_occupants[{i}]") for i, o in enumerate(listed))
            return Event(kind, room, space, destroyed, destroyed_at=destroyed, occupants=occupants)
        case _:
            occupant = _occupant(body.get("occupant"), nick_room, "occupant")
            if kind == "occupant/left" and occupant.left_at is None:
                raise BadEvent("occupant.left_at is missing")
            at = occupant.left_at if kind == "occupant/left" else occupant.joined_at
            return Event(kind, room, space, at, occupant=occupant)


def fingerprint(kind: str, body: Any) -> str:
    """The same post, retried, has the same fingerprint whatever the key order."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{kind}\n{canonical}".encode()).hexdigest()


async def webinar_for_room(session: AsyncSession, room: str, at: dt.datetime) -> Webinar | None:
    """The webinar that uses `room` nearest to `at` (within MATCH_DISTANCE), or None.

    Live webinars first: their room is unique, and the partial index on it makes this one
    lookup; a room reused after an earlier webinar ended falls back to all of them.
    """
    live = await session.scalar(select(Webinar).where(Webinar.room == room, Webinar.status == WebinarStatus.SCHEDULED))
    if live is not None and _distance(live, at) <= MATCH_DISTANCE:
        return live
    candidates = list(await session.scalars(select(Webinar).where(Webinar.room == room)))
    candidates = [w for w in candidates if _distance(w, at) <= MATCH_DISTANCE]
    return min(candidates, key=lambda w: (_distance(w, at), w.status != WebinarStatus.SCHEDULED), default=None)


def _distance(webinar: Webinar, at: dt.datetime) -> dt.timedelta:
    if at < webinar.starts_at:
        return webinar.starts_at - at
    if at > webinar.ends_at:
        return at - webinar.ends_at
    return dt.timedelta(0)


async def _ticket_id(session: AsyncSession, webinar: Webinar, user_id: str | None) -> uuid.UUID | None:
    """The ticket named by the token's user id when it is one of this webinar's, else None."""
    if not user_id:
        return None
    try:
        ticket_id = uuid.UUID(user_id)
    except ValueError:
        return None
    return await session.scalar(select(Ticket.id).where(Ticket.id == ticket_id, Ticket.webinar_id == webinar.id))


async def _record_stay(session: AsyncSession, webinar: Webinar, space: str, occupant: Occupant, *,
                       left_at: dt.datetime | None, exact: bool) -> None:
    """Insert the stay unless known, then set its end: an exact end (the occupant's own leave,
    the same in every event that has it) always; the room's end only where none is known."""
    key = {"webinar_id": webinar.id, "space": space, "occupant_jid": occupant.jid, "joined_at": occupant.joined_at}
    ticket_id = await _ticket_id(session, webinar, occupant.user_id)
    await session.execute(
        insert(session, AttendanceSession).values(
            **key, ticket_id=ticket_id, nick=occupant.nick, user_id=occupant.user_id, name=occupant.name,
            email=occupant.email, left_at=None, left_exact=False,
        ).on_conflict_do_nothing(index_elements=list(key))
    )
    if left_at is None:
        return
    where = [getattr(AttendanceSession, name) == value for name, value in key.items()]
    if not exact:
        where.append(AttendanceSession.left_exact.is_(False))
    await session.execute(
        update(AttendanceSession).where(*where).values(left_at=left_at, left_exact=exact)
        .execution_options(synchronize_session=False)
    )


async def apply(session: AsyncSession, event: Event) -> tuple[str, uuid.UUID | None]:
    """Apply a checked event; returns (outcome, webinar id). Idempotent and order-free."""
    room = room_of(event.room)
    webinar = await webinar_for_room(session, room, event.at) if room else None
    if webinar is None:
        return "ignored", None
    match event.kind:
        case "occupant/joined":
            assert event.occupant is not None
            await _record_stay(session, webinar, event.space, event.occupant, left_at=None, exact=False)
        case "occupant/left":
            assert event.occupant is not None
            await _record_stay(session, webinar, event.space, event.occupant, left_at=event.occupant.left_at,
                               exact=True)
        case "room/destroyed":
            assert event.destroyed_at is not None
            for occupant in event.occupants:
                exact = occupant.left_at is not None
                await _record_stay(session, webinar, event.space, occupant,
                                   left_at=occupant.left_at or event.destroyed_at, exact=exact)
            # Anyone still open in this room (a join whose leave never came) left when it closed.
            await session.execute(
                update(AttendanceSession).where(
                    AttendanceSession.webinar_id == webinar.id, AttendanceSession.space == event.space,
                    AttendanceSession.left_at.is_(None), AttendanceSession.joined_at <= event.destroyed_at,
                ).values(left_at=event.destroyed_at).execution_options(synchronize_session=False)
            )
    return "recorded", webinar.id


async def receive(sessionmaker: async_sessionmaker[AsyncSession], kind: str, body: Any) -> str:
    """Check, store and apply one post; returns the outcome (recorded, ignored, duplicate, error).

    Raises BadEvent (nothing stored) and Unavailable when the database cannot be reached, so
    the component retries. A failure that is not the database's keeps the event unprocessed,
    with the reason, for the worker to try again.
    """
    event = parse(kind, body)
    values = {"kind": kind, "fingerprint": fingerprint(kind, body), "room_name": event.room, "payload": body}
    try:
        try:
            async with sessionmaker.begin() as session:
                stored = await session.execute(
                    insert(session, JitsiEvent).values(**values, received_at=utcnow())
                    .on_conflict_do_nothing(index_elements=["fingerprint"]).returning(JitsiEvent.id)
                )
                event_id = stored.scalar()
                if event_id is None:
                    return "duplicate"
                outcome, webinar_id = await apply(session, event)
                await session.execute(
                    update(JitsiEvent).where(JitsiEvent.id == event_id)
                    .values(outcome=outcome, webinar_id=webinar_id, processed_at=utcnow())
                )
                return outcome
        except Exception as error:
            if is_unavailable(error):
                raise
            logger.exception("applying a Jitsi event failed", extra={"kind": kind})
            async with sessionmaker.begin() as session:
                await session.execute(
                    insert(session, JitsiEvent).values(**values, received_at=utcnow(), outcome="error",
                                                       error=f"{type(error).__name__}: {error}"[:2000])
                    .on_conflict_do_nothing(index_elements=["fingerprint"])
                )
            return "error"
    except Exception as error:
        if not is_unavailable(error):
            raise
        logger.warning("database unavailable for a Jitsi event", extra={"kind": kind, "error": type(error).__name__})
        raise Unavailable("the database is unavailable; Prosody will retry") from error


async def process_stored(sessionmaker: async_sessionmaker[AsyncSession], event_id: int) -> str:
    """Apply a stored event not applied yet (a retry after a failure); returns its outcome."""
    async with sessionmaker.begin() as session:
        stored = await session.scalar(select(JitsiEvent).where(JitsiEvent.id == event_id).with_for_update())
        if stored is None or stored.processed_at is not None:
            return "duplicate"
        try:
            event = parse(stored.kind, stored.payload)
            async with session.begin_nested():
                outcome, webinar_id = await apply(session, event)
        except Exception as error:
            if is_unavailable(error):
                raise
            stored.error = f"{type(error).__name__}: {error}"[:2000]
            stored.outcome = "error"
            return "error"
        stored.outcome, stored.webinar_id, stored.processed_at, stored.error = outcome, webinar_id, utcnow(), None
        return outcome


@periodic("attendance.retry_events")
async def retry_events(ctx: JobContext, *, now: dt.datetime | None = None) -> int:
    """Every sweep: apply again the stored events whose processing failed (oldest first)."""
    cutoff = (now or utcnow()) - RETRY_AFTER
    async with ctx.sessionmaker() as session:
        ids = list(await session.scalars(
            select(JitsiEvent.id).where(JitsiEvent.processed_at.is_(None), JitsiEvent.received_at < cutoff)
            .order_by(JitsiEvent.id).limit(500)
        ))
    done = 0
    for event_id in ids:
        if await process_stored(ctx.sessionmaker, event_id) != "error":
            done += 1
    if ids:
        logger.info("stored Jitsi events retried", extra={"count": len(ids), "applied": done})
    return done
