"""The join decision: what a personal link does at a given moment, and the organizer's host link.

A link is looked up by the SHA-256 of its code (all the database keeps) and the stored hash
is compared in constant time. Unknown → NotFound; revoked, cancelled or over → Gone with the
reason; too early → Waiting; otherwise the join is recorded and a token minted there and then.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import uuid
from hmac import compare_digest

from sqlalchemy import func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.access import join_records
from ticketing.access.devices import InUse, claim
from ticketing.access.tokens import Tokens, room_url, window
from ticketing.db import UTCDateTime
from ticketing.db.engine import engine_of
from ticketing.db.models import Organizer, ReplacedCode, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.errors import Conflict, NotFound
from ticketing.settings import Settings
from ticketing.tickets.service import hash_code
from ticketing.webinars.service import get_own_webinar

logger = logging.getLogger(__name__)

# Codes are URL-safe base64 of at least 16 random bytes; anything else is unknown without a query.
CODE_PATTERN = re.compile(r"[A-Za-z0-9_-]{22,128}")

ENDED = "ended"
# A newer link replaced this one (time change, resend, restore), or the seat went to someone else.
REPLACED = "replaced"
REASSIGNED = "reassigned"
# What the page says for each way a link stops working (tickets.revoked_reason, or "ended").
REASONS = {
    REPLACED: "This link was replaced by a newer one, sent by email.",
    REASSIGNED: "This link was replaced by a newer one: the seat now belongs to someone else.",
    "refunded": "This ticket was refunded, so its link no longer opens the webinar.",
    "disputed": "The payment for this ticket was disputed, so its link no longer opens the webinar.",
    "cancelled": "This webinar has been cancelled by its organizer. Paid tickets are refunded.",
    "organizer": "The organizer has withdrawn this ticket, so its link no longer opens the webinar.",
    ENDED: "This webinar has ended.",
}
UNKNOWN_REASON = "This ticket is no longer valid."


@dataclasses.dataclass(frozen=True)
class Admitted:
    """In: the Jitsi URL with a freshly minted token."""

    url: str
    ticket_id: uuid.UUID


@dataclasses.dataclass(frozen=True)
class Waiting:
    """Too early: the doors open at `opens_at`."""

    webinar: Webinar
    opens_at: dt.datetime
    now: dt.datetime

    @property
    def seconds_left(self) -> float:
        return max((self.opens_at - self.now).total_seconds(), 0.0)


@dataclasses.dataclass(frozen=True)
class Gone:
    """The link no longer works; `reason` is a key of REASONS (or an unknown revocation reason)."""

    reason: str
    webinar: Webinar
    # For REPLACED and REASSIGNED: when the newer link was made (and sent).
    replaced_at: dt.datetime | None = None

    @property
    def message(self) -> str:
        return REASONS.get(self.reason, UNKNOWN_REASON)


Decision = Admitted | Waiting | Gone | InUse


def decide(ticket: Ticket, webinar: Webinar, settings: Settings, *, now: dt.datetime) -> Waiting | Gone | None:
    """Why `ticket` cannot enter at `now`, or None when it can."""
    if webinar.status == WebinarStatus.CANCELLED:
        return Gone("cancelled", webinar)
    if ticket.status == TicketStatus.REVOKED:
        return Gone(ticket.revoked_reason or "", webinar)
    opens, closes = window(webinar, settings)
    if ticket.status == TicketStatus.EXPIRED or webinar.status == WebinarStatus.ENDED or now > closes:
        return Gone(ENDED, webinar)
    if now < opens:
        return Waiting(webinar, opens, now)
    return None


async def find_ticket(session: AsyncSession, code: str) -> tuple[Ticket, Webinar] | None:
    """The ticket (and its webinar) whose code is `code`, by hash, compared in constant time."""
    if not CODE_PATTERN.fullmatch(code):
        return None
    code_hash = hash_code(code)
    row = (await session.execute(
        select(Ticket, Webinar).join(Webinar, Webinar.id == Ticket.webinar_id).where(Ticket.code_hash == code_hash)
    )).first()
    # The index lookup already matched; comparing again in constant time keeps the final
    # decision free of timing that depends on how much of the hash matched.
    if row is None or not compare_digest(row[0].code_hash, code_hash):
        return None
    return row[0], row[1]


async def find_replaced(session: AsyncSession, code: str) -> tuple[Ticket, Webinar, ReplacedCode] | None:
    """The ticket whose earlier code was `code`, with its webinar and what replaced the code."""
    if not CODE_PATTERN.fullmatch(code):
        return None
    code_hash = hash_code(code)
    row = (await session.execute(
        select(Ticket, Webinar, ReplacedCode)
        .join(Webinar, Webinar.id == Ticket.webinar_id)
        .join(ReplacedCode, ReplacedCode.ticket_id == Ticket.id)
        .where(ReplacedCode.code_hash == code_hash)
    )).first()
    if row is None or not compare_digest(row[2].code_hash, code_hash):
        return None
    return row[0], row[1], row[2]


async def webinar_of_code(session: AsyncSession, code: str) -> Webinar | None:
    """The webinar of a current or replaced join link, so that a refusal can speak its language."""
    found = await find_ticket(session, code) or await find_replaced(session, code)
    return found[1] if found else None


async def open_link(sessionmaker: async_sessionmaker[AsyncSession], tokens: Tokens, code: str, *,
                    now: dt.datetime, device: str | None = None) -> Decision:
    """What `/j/{code}` does at `now`; records the join and mints the token when the doors are open.

    PostgreSQL admits and records in one autocommitted UPDATE; SQLite reads once and counts
    the join in the next batch (access.join_records). A link that does not admit that way
    (unknown, replaced, refused, or a `one_device` webinar's link opened by a browser with a
    device id, which needs the device claim) takes one transaction that decides and records.
    The token is signed after the database has answered, so the signature (slow with RS256)
    never holds a lock.
    """
    if not CODE_PATTERN.fullmatch(code):
        raise NotFound(UNKNOWN_LINK, reason="unknown_link")
    code_hash = hash_code(code)
    settings = tokens.settings
    if engine_of(sessionmaker).dialect.name == "postgresql":
        found = await join_records.admit(
            sessionmaker, code_hash, now=now,
            opens_by=now + dt.timedelta(minutes=settings.join_early_minutes),
            closes_by=now - dt.timedelta(minutes=settings.join_grace_minutes))
        # The index lookup already matched; comparing again in constant time keeps the final
        # decision free of timing that depends on how much of the hash matched.
        if found is not None and compare_digest(found[0].code_hash, code_hash):
            return _admitted(tokens, *found, now=now)
    else:
        found = await join_records.find(sessionmaker, code_hash)
        if (found is not None and compare_digest(found[0].code_hash, code_hash)
                and not (found[1].one_device and device is not None)):
            ticket, webinar = found
            if decide(ticket, webinar, settings, now=now) is None:
                join_records.batch_for(sessionmaker).add(ticket.id, now)
                return _admitted(tokens, ticket, webinar, now=now)
            # The pages that say why show the webinar as the ORM knows it.
            return decide(*join_records.as_models(ticket, webinar), settings, now=now)
    return await _open_in_transaction(sessionmaker, tokens, code, now=now, device=device)


async def _open_in_transaction(sessionmaker: async_sessionmaker[AsyncSession], tokens: Tokens, code: str, *,
                               now: dt.datetime, device: str | None) -> Decision:
    """The full decision in one transaction: replaced links, refusals, the device claim."""
    async with sessionmaker.begin() as session:
        found = await find_ticket(session, code)
        if found is None:
            replaced = await find_replaced(session, code)
            if replaced is None:
                raise NotFound(UNKNOWN_LINK, reason="unknown_link")
            ticket, webinar, replacement = replaced
            refused = decide(ticket, webinar, tokens.settings, now=now)
            if isinstance(refused, Gone):
                return refused  # cancelled, revoked or over says more than "replaced"
            reason = REASSIGNED if replacement.reason == "reassigned" else REPLACED
            return Gone(reason, webinar, replaced_at=replacement.replaced_at)
        ticket, webinar = found
        refused = decide(ticket, webinar, tokens.settings, now=now)
        if refused is not None:
            return refused
        # One device per ticket (when the webinar asks for it): `device` is the browser's cookie.
        in_use = await claim(session, ticket, webinar, tokens.settings, device, now=now)
        if in_use is not None:
            return in_use
        await session.execute(
            update(Ticket).where(Ticket.id == ticket.id).values(
                join_count=Ticket.join_count + 1,
                first_joined_at=func.coalesce(Ticket.first_joined_at, literal(now, UTCDateTime)),
                last_joined_at=now,
            )
        )
    return _admitted(tokens, ticket, webinar, now=now)


def _admitted(tokens: Tokens, ticket, webinar, *, now: dt.datetime) -> Admitted:
    token = tokens.attendee_token(ticket, webinar, now=now)
    logger.debug("join", extra={"ticket_id": str(ticket.id), "webinar_id": str(webinar.id)})
    return Admitted(url=room_url(tokens.settings, webinar.room, token), ticket_id=ticket.id)


UNKNOWN_LINK = "This join link is not known. Check that the whole link was copied from the email."


@dataclasses.dataclass(frozen=True)
class HostLink:
    """The organizer's way in: a Jitsi URL whose token makes them moderator, for the webinar's window."""

    url: str
    room: str
    opens_at: dt.datetime
    expires_at: dt.datetime


async def host_link(session: AsyncSession, tokens: Tokens, organizer: Organizer, webinar_id: uuid.UUID, *,
                    now: dt.datetime) -> HostLink:
    """A host link for one of the organizer's webinars; Conflict once it is cancelled or over."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    opens, closes = window(webinar, tokens.settings)
    if webinar.status == WebinarStatus.CANCELLED:
        raise Conflict("this webinar has been cancelled")
    if webinar.status == WebinarStatus.ENDED or now > closes:
        raise Conflict("this webinar has ended")
    token = tokens.host_token(organizer, webinar, now=now)
    return HostLink(url=room_url(tokens.settings, webinar.room, token), room=webinar.room,
                    opens_at=opens, expires_at=closes)
