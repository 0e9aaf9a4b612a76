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
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import is_unavailable, utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import AttendanceSession, JitsiEvent, Ticket, Webinar, WebinarStatus
from ticketing.errors import Invalid, Unavailable
from ticketing.inputs import check_storable
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
# Rows per statement: a destroyed room may list thousands of occupants, and SQLite and asyncpg
# cap the bound parameters of one statement (32766 and 32767; a stay has 12 columns).
CHUNK = 1000
# A stored event whose processing keeps failing is tried again for this long.
RETRY_FOR = dt.timedelta(days=3)


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
    # The whole body is stored as it came: a value no database keeps (a NUL, a lone surrogate,
    # an integer beyond 64 bits) or nesting no event has is refused here, for this post alone,
    # rather than failing the transaction it would share with others.
    try:
        check_storable(body)
    except Invalid as error:
        raise BadEvent(error.message) from None
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


def _distance(webinar: Webinar, at: dt.datetime) -> dt.timedelta:
    if at < webinar.starts_at:
        return webinar.starts_at - at
    if at > webinar.ends_at:
        return at - webinar.ends_at
    return dt.timedelta(0)


def _nearest(candidates: list[Webinar], at: dt.datetime) -> Webinar | None:
    near = [w for w in candidates if _distance(w, at) <= MATCH_DISTANCE]
    return min(near, key=lambda w: (_distance(w, at), w.status != WebinarStatus.SCHEDULED, str(w.id)), default=None)


async def _webinars(session: AsyncSession, events: Sequence[Event]) -> list[Webinar | None]:
    """For each event, the webinar that uses its room nearest to the event's time (within
    MATCH_DISTANCE), or None. Live webinars first, whose room is unique and indexed; a room
    whose live webinar is too far off looks at all webinars that ever used it."""
    rooms = [room_of(e.room) for e in events]
    wanted = {r for r in rooms if r}
    by_room: dict[str, list[Webinar]] = defaultdict(list)
    if wanted:
        for webinar in await session.scalars(
            select(Webinar).where(Webinar.status == WebinarStatus.SCHEDULED, Webinar.room.in_(wanted))
        ):
            by_room[webinar.room].append(webinar)
    found = [_nearest(by_room.get(r, []), e.at) if r else None for r, e in zip(rooms, events, strict=True)]
    missing = {r for r, w in zip(rooms, found, strict=True) if r and w is None}
    if missing:
        every: dict[str, list[Webinar]] = defaultdict(list)
        for webinar in await session.scalars(select(Webinar).where(Webinar.room.in_(missing))):
            every[webinar.room].append(webinar)
        found = [w if w is not None or not r else _nearest(every.get(r, []), e.at)
                 for r, w, e in zip(rooms, found, events, strict=True)]
    return found


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _tickets(session: AsyncSession, occupants: Iterable[Occupant]) -> dict[uuid.UUID, uuid.UUID]:
    """Ticket id → its webinar, for the ticket ids the occupants' tokens name."""
    ids = sorted({i for i in (_uuid(o.user_id) for o in occupants) if i is not None})
    found: dict[uuid.UUID, uuid.UUID] = {}
    for start in range(0, len(ids), CHUNK):
        found.update((await session.execute(
            select(Ticket.id, Ticket.webinar_id).where(Ticket.id.in_(ids[start:start + CHUNK]))
        )).all())
    return found


def _stay_rows(events: Sequence[Event], webinars: Sequence[Webinar | None],
               tickets: dict[uuid.UUID, uuid.UUID]) -> list[dict[str, Any]]:
    """One row per stay the events mention, merged where several mention the same stay: an exact
    end (the occupant's own leave) wins over the room's end, and known details are kept."""
    rows: dict[tuple, dict[str, Any]] = {}

    def add(webinar: Webinar, space: str, occupant: Occupant, left_at: dt.datetime | None, exact: bool) -> None:
        ticket_id = _uuid(occupant.user_id)
        row = {"webinar_id": webinar.id, "space": space, "occupant_jid": occupant.jid, "joined_at": occupant.joined_at,
               "ticket_id": ticket_id if ticket_id is not None and tickets.get(ticket_id) == webinar.id else None,
               "nick": occupant.nick, "user_id": occupant.user_id, "name": occupant.name, "email": occupant.email,
               "left_at": left_at, "left_exact": exact}
        key = (webinar.id, space, occupant.jid, occupant.joined_at)
        known = rows.get(key)
        if known is None:
            rows[key] = row
            return
        for name in ("ticket_id", "nick", "user_id", "name", "email"):
            known[name] = known[name] or row[name]
        if exact and not known["left_exact"]:
            known["left_at"], known["left_exact"] = left_at, True
        elif known["left_at"] is None:
            known["left_at"] = left_at

    for event, webinar in zip(events, webinars, strict=True):
        if webinar is None:
            continue
        match event.kind:
            case "occupant/joined":
                add(webinar, event.space, event.occupant, None, False)
            case "occupant/left":
                add(webinar, event.space, event.occupant, event.occupant.left_at, True)
            case "room/destroyed":
                for occupant in event.occupants:
                    exact = occupant.left_at is not None
                    add(webinar, event.space, occupant, occupant.left_at or event.destroyed_at, exact)
    # In key order, so two processes upserting overlapping stays lock them in the same order.
    return [rows[key] for key in sorted(rows, key=lambda k: (str(k[0]), k[1], k[2], k[3]))]


async def _upsert_stays(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """All stays in one INSERT … ON CONFLICT DO UPDATE: the statement count of a burst of events
    does not grow with its size, which is what keeps a start-of-webinar burst fast."""
    for start in range(0, len(rows), CHUNK):
        await _upsert_chunk(session, rows[start:start + CHUNK])


async def _upsert_chunk(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    table = AttendanceSession.__table__
    statement = insert(session, AttendanceSession).values(rows)
    new = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["webinar_id", "space", "occupant_jid", "joined_at"],
        set_={
            # An exact end always; the room's end only where no end is known yet.
            "left_at": case((new.left_exact, new.left_at), (table.c.left_exact, table.c.left_at),
                            else_=func.coalesce(table.c.left_at, new.left_at)),
            "left_exact": or_(table.c.left_exact, new.left_exact),
            "ticket_id": func.coalesce(table.c.ticket_id, new.ticket_id),
            "nick": func.coalesce(table.c.nick, new.nick),
        },
    )
    await session.execute(statement)


async def apply_many(session: AsyncSession, events: Sequence[Event]) -> list[tuple[str, uuid.UUID | None]]:
    """Apply checked events; returns (outcome, webinar id) for each. Idempotent and order-free."""
    webinars = await _webinars(session, events)
    occupants = [o for e in events for o in ((e.occupant,) if e.occupant else e.occupants)]
    tickets = await _tickets(session, occupants)
    await _upsert_stays(session, _stay_rows(events, webinars, tickets))
    for event, webinar in zip(events, webinars, strict=True):
        if webinar is not None and event.kind == "room/destroyed":
            # Anyone still open in this room (a join whose leave never came) left when it closed.
            await session.execute(
                update(AttendanceSession).where(
                    AttendanceSession.webinar_id == webinar.id, AttendanceSession.space == event.space,
                    AttendanceSession.left_at.is_(None), AttendanceSession.joined_at <= event.destroyed_at,
                ).values(left_at=event.destroyed_at).execution_options(synchronize_session=False)
            )
    return [("ignored", None) if w is None else ("recorded", w.id) for w in webinars]


async def apply(session: AsyncSession, event: Event) -> tuple[str, uuid.UUID | None]:
    """Apply one checked event; (outcome, webinar id)."""
    return (await apply_many(session, [event]))[0]


@dataclasses.dataclass(frozen=True)
class Posted:
    """One post as received: its kind, the body as sent, and the checked event."""

    kind: str
    body: Any
    event: Event

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.body)


def _raw(posted: Posted, now: dt.datetime) -> dict[str, Any]:
    return {"kind": posted.kind, "fingerprint": posted.fingerprint, "room_name": posted.event.room,
            "payload": posted.body, "received_at": now}


async def receive_many(sessionmaker: async_sessionmaker[AsyncSession], posts: Sequence[Posted]) -> list[str]:
    """Store and apply checked posts in one transaction; the outcome of each (recorded,
    ignored, duplicate, error). Duplicates (retries) are kept once and applied once.

    Raises Unavailable when the database cannot be reached (nothing stored: the component
    retries). Any other failure of several posts is raised too (nothing stored), so that the
    caller writes them one by one; a single post that fails is kept unprocessed, with the
    reason, for the sweep.
    """
    first: dict[str, int] = {}
    for index, posted in enumerate(posts):
        first.setdefault(posted.fingerprint, index)
    unique = sorted((posts[i] for i in first.values()), key=lambda p: p.fingerprint)
    try:
        try:
            async with sessionmaker.begin() as session:
                now = utcnow()
                results = await apply_many(session, [p.event for p in unique])
                rows = [_raw(p, now) | {"outcome": outcome, "webinar_id": webinar_id, "processed_at": now}
                        for p, (outcome, webinar_id) in zip(unique, results, strict=True)]
                stored = set((await session.execute(
                    insert(session, JitsiEvent).values(rows).on_conflict_do_nothing(index_elements=["fingerprint"])
                    .returning(JitsiEvent.fingerprint)
                )).scalars())
                by_fingerprint = {p.fingerprint: outcome for p, (outcome, _) in zip(unique, results, strict=True)}
        except Exception as error:
            if is_unavailable(error) or len(unique) > 1:
                raise  # an outage, or a batch whose posts the caller writes one by one instead
            logger.exception("applying Jitsi events failed", extra={"count": len(unique)})
            reason = f"{type(error).__name__}: {error}"[:2000]
            async with sessionmaker.begin() as session:
                now = utcnow()
                stored = set((await session.execute(
                    insert(session, JitsiEvent).values([_raw(p, now) | {"outcome": "error", "error": reason}
                                                        for p in unique])
                    .on_conflict_do_nothing(index_elements=["fingerprint"]).returning(JitsiEvent.fingerprint)
                )).scalars())
            by_fingerprint = dict.fromkeys(stored, "error")
    except Exception as error:
        if not is_unavailable(error):
            raise
        logger.warning("database unavailable for Jitsi events", extra={"error": type(error).__name__})
        raise Unavailable("the database is unavailable; Prosody will retry") from error
    return [by_fingerprint[p.fingerprint] if index == first[p.fingerprint] and p.fingerprint in stored else "duplicate"
            for index, p in enumerate(posts)]


async def receive(sessionmaker: async_sessionmaker[AsyncSession], kind: str, body: Any) -> str:
    """Check, store and apply one post; raises BadEvent (nothing stored) or Unavailable."""
    return (await receive_many(sessionmaker, [Posted(kind, body, parse(kind, body))]))[0]


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
    now = now or utcnow()
    cutoff = now - RETRY_AFTER
    async with ctx.sessionmaker() as session:
        ids = list(await session.scalars(
            select(JitsiEvent.id).where(JitsiEvent.processed_at.is_(None), JitsiEvent.received_at < cutoff,
                                        JitsiEvent.received_at > now - RETRY_FOR)
            .order_by(JitsiEvent.id).limit(500)
        ))
    done = 0
    for event_id in ids:
        if await process_stored(ctx.sessionmaker, event_id) != "error":
            done += 1
    if ids:
        logger.info("stored Jitsi events retried", extra={"count": len(ids), "applied": done})
    return done
