"""Moving a ticket to another device: the mailed one-time "move here" link that hands a
one-device ticket over, binding the browser that opens it. The stays the old device still has
open are ended through Jitsi when it can name them (see `kick`), else the move is recorded.
Which browser holds a ticket, and refusing a second one, is the join's claim (access.devices).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.access.devices import email_hint, open_stays, see
from ticketing.access.join import decide, find_ticket
from ticketing.access.tokens import Tokens, room_url, window
from ticketing.attendance.kick import queue_kicks
from ticketing.db import UTCDateTime
from ticketing.db.models import DeviceMove, Ticket, Webinar
from ticketing.errors import Conflict, NotFound
from ticketing.jobs import enqueue
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

MOVE_MAIL = "mail.device_move"
MOVE_LIFETIME = dt.timedelta(minutes=30)
# One move mail per ticket in this long, so the button cannot flood the holder's inbox.
MOVE_MAIL_INTERVAL = dt.timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class MoveRequested:
    """The move link is on its way to the holder (or went out a moment ago)."""

    webinar: Webinar
    email_hint: str


async def request_move(session: AsyncSession, ticket: Ticket, webinar: Webinar, device: str | None, *,
                       now: dt.datetime) -> MoveRequested:
    """Mail the ticket's holder a one-time link that moves the ticket to the device opening it.

    At most one mail per MOVE_MAIL_INTERVAL; the link works for MOVE_LIFETIME. The token is
    only in the mail job's payload (dropped once sent); the database keeps its hash.
    """
    await session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    recent = await session.scalar(
        select(DeviceMove.id).where(DeviceMove.ticket_id == ticket.id, DeviceMove.used_at.is_(None),
                                    DeviceMove.created_at > now - MOVE_MAIL_INTERVAL).limit(1)
    )
    if recent is None:
        token = secrets.token_urlsafe(32)
        move = DeviceMove(id=uuid.uuid4(), ticket_id=ticket.id, token_hash=_hash(token), requested_by=device,
                          created_at=now, expires_at=now + MOVE_LIFETIME)
        session.add(move)
        await session.flush()
        await enqueue(session, MOVE_MAIL, {"move_id": str(move.id), "code": token}, dedupe_key=f"{MOVE_MAIL}:{move.id}")
        logger.info("device move requested", extra={"ticket_id": str(ticket.id)})
    return MoveRequested(webinar, email_hint(ticket.email))


@dataclasses.dataclass(frozen=True)
class MoveLink:
    """A move link as its page shows it: usable, or why not (`problem`)."""

    move: DeviceMove
    ticket: Ticket
    webinar: Webinar
    problem: str | None


MOVE_USED = "This link has been used already. Each move link works once; ask for a new one from your join link."
MOVE_EXPIRED = "This link has expired. Open your join link again and ask for a new one."


async def find_move(session: AsyncSession, token: str, *, now: dt.datetime, for_update: bool = False) -> MoveLink:
    """The move link for `token`; NotFound when unknown."""
    if not 20 <= len(token) <= 128:
        raise NotFound("This link is not known. Check that the whole link was copied from the email.")
    query = (select(DeviceMove, Ticket, Webinar).join(Ticket, Ticket.id == DeviceMove.ticket_id)
             .join(Webinar, Webinar.id == Ticket.webinar_id).where(DeviceMove.token_hash == _hash(token)))
    if for_update:
        query = query.with_for_update(of=DeviceMove)
    row = (await session.execute(query)).first()
    if row is None or not hmac.compare_digest(row[0].token_hash, _hash(token)):
        raise NotFound("This link is not known. Check that the whole link was copied from the email.")
    move, ticket, webinar = row
    problem = MOVE_USED if move.used_at is not None else MOVE_EXPIRED if now >= move.expires_at else None
    return MoveLink(move, ticket, webinar, problem)


def opens_directly(link: MoveLink, device: str | None) -> bool:
    """Opening the link in the browser that asked for it moves the ticket at once; anywhere else
    (another browser, a mail scanner following links) it asks for a button press first."""
    return link.problem is None and device is not None and link.move.requested_by == device


@dataclasses.dataclass(frozen=True)
class Moved:
    """The ticket is now this device's: the Jitsi URL with a fresh token, and what became of the old device."""

    url: str
    outcome: str


async def complete_move(sessionmaker: async_sessionmaker[AsyncSession], tokens: Tokens, token: str, device: str, *,
                        now: dt.datetime):
    """Use a move link from `device`: bind the ticket to it, end the old device's stay through
    Jitsi when possible (else record the move), and mint the token.

    Returns Moved, the MoveLink when it cannot be used (used, expired), or the join decision
    (Waiting, Gone) when the ticket does not admit anyone now.
    """
    settings = tokens.settings
    async with sessionmaker.begin() as session:
        link = await find_move(session, token, now=now, for_update=True)
        if link.problem is not None:
            return link
        refused = decide(link.ticket, link.webinar, settings, now=now)
        if refused is not None:
            return refused
        ticket, webinar = link.ticket, link.webinar
        await session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
        await see(session, ticket.id, device, now, admitted=True, bind=True)
        opens, _ = window(webinar, settings)
        stays = await open_stays(session, ticket.id, opens - dt.timedelta(hours=1))
        kicked = await queue_kicks(session, settings, webinar, [s.nick for s in stays if s.nick and s.space == ""],
                                   move_id=link.move.id, now=now)
        link.move.used_at, link.move.used_by = now, device
        link.move.outcome = "kick_queued" if kicked else "recorded"
        await session.execute(
            update(Ticket).where(Ticket.id == ticket.id).values(
                join_count=Ticket.join_count + 1,
                first_joined_at=func.coalesce(Ticket.first_joined_at, literal(now, UTCDateTime)),
                last_joined_at=now,
            )
        )
        outcome = link.move.outcome
    logger.info("ticket moved to another device", extra={"ticket_id": str(ticket.id), "outcome": outcome})
    return Moved(url=room_url(settings, webinar.room, tokens.attendee_token(ticket, webinar, now=now)), outcome=outcome)


async def ask_for_move(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, code: str,
                       device: str | None, *, now: dt.datetime):
    """The in-use page's "send me a move link" button: MoveRequested, or the join decision
    (Waiting, Gone) when the ticket admits nobody now; NotFound for an unknown code."""
    async with sessionmaker.begin() as session:
        found = await find_ticket(session, code)
        if found is None:
            raise NotFound("This join link is not known. Check that the whole link was copied from the email.")
        ticket, webinar = found
        refused = decide(ticket, webinar, settings, now=now)
        if refused is not None:
            return refused
        if not webinar.one_device:
            raise Conflict("This ticket is not limited to one device: open your join link on any device.")
        return await request_move(session, ticket, webinar, device, now=now)
