"""One device per ticket, as a join link admits: the signed device cookie, and the claim that
binds the first browser admitted and refuses a second one while the first is in the room.

A browser is known by a random device id in a signed cookie. The first browser admitted on a
webinar with `one_device` becomes the ticket's device; it re-enters freely (reloads,
reconnects). Another browser is refused only while the ticket is present in the room (an open
attendance stay, from Prosody's events); once the ticket has left, the next browser admitted
becomes its device. Handing a ticket over on purpose is attendance's move link.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.access.tokens import window
from ticketing.db.dialect import insert
from ticketing.db.models import AttendanceSession, Ticket, TicketDevice, Webinar
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

COOKIE = "ticketing_device"
_DEVICE = len(secrets.token_hex(16))


# --- the device cookie -----------------------------------------------------------------------


def _cookie_key(settings: Settings) -> bytes:
    # Derived, so no new secret needs configuring: the events secret (or the webhook secret,
    # which every configuration has) keyed to this one use.
    base = settings.jitsi_events_secret or settings.stripe_webhook_secrets[0]
    return hmac.new(base.encode(), b"ticketing device cookie", hashlib.sha256).digest()


def new_device() -> str:
    return secrets.token_hex(16)


def sign_device(settings: Settings, device: str) -> str:
    """The cookie value for a device id."""
    mac = hmac.new(_cookie_key(settings), device.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{device}.{mac}"


def device_from_cookie(settings: Settings, value: str | None) -> str | None:
    """The device id in a cookie value we signed, or None for anything else."""
    if not value:
        return None
    device, _, mac = value.partition(".")
    if len(device) != _DEVICE or not all(c in "0123456789abcdef" for c in device):
        return None
    return device if hmac.compare_digest(sign_device(settings, device), value) else None


# --- refusing a second device ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InUse:
    """The ticket is in the room from another device: no token; the holder may move it here."""

    webinar: Webinar
    ticket_id: uuid.UUID
    email_hint: str


def email_hint(email: str) -> str:
    """`b…@example.com`: enough for the holder to recognise, little for anyone else."""
    local, at, domain = email.partition("@")
    return f"{local[:1]}…{at}{domain}" if at else "the ticket's address"


async def open_stays(session: AsyncSession, ticket_id: uuid.UUID, since: dt.datetime) -> list[AttendanceSession]:
    return list(await session.scalars(
        select(AttendanceSession).where(AttendanceSession.ticket_id == ticket_id, AttendanceSession.left_at.is_(None),
                                        AttendanceSession.joined_at >= since)
    ))


async def see(session: AsyncSession, ticket_id: uuid.UUID, device: str, now: dt.datetime, *, admitted: bool,
               bind: bool = False) -> None:
    """Note that `device` opened the ticket's link (and was let in); with `bind` it becomes the ticket's device."""
    await session.execute(
        insert(session, TicketDevice).values(ticket_id=ticket_id, device_id=device, first_seen_at=now,
                                             last_seen_at=now, joins=0, bound_at=None)
        .on_conflict_do_nothing(index_elements=["ticket_id", "device_id"])
    )
    values: dict = {"last_seen_at": now}
    if admitted:
        values["joins"] = TicketDevice.joins + 1
    if bind:
        values["bound_at"] = now
    await session.execute(update(TicketDevice).where(TicketDevice.ticket_id == ticket_id,
                                                     TicketDevice.device_id == device).values(**values))


async def _holder(session: AsyncSession, ticket_id: uuid.UUID) -> str | None:
    """The device that holds the ticket: the one bound last."""
    return await session.scalar(
        select(TicketDevice.device_id).where(TicketDevice.ticket_id == ticket_id, TicketDevice.bound_at.is_not(None))
        .order_by(TicketDevice.bound_at.desc(), TicketDevice.device_id).limit(1)
    )


async def claim(session: AsyncSession, ticket: Ticket, webinar: Webinar, settings: Settings, device: str | None, *,
                now: dt.datetime) -> InUse | None:
    """Whether `device` may enter with `ticket` now (None) or the ticket is in use elsewhere.

    Only for webinars with `one_device`; the ticket's row is locked so two browsers opening
    the link at once are decided one after the other.
    """
    if not webinar.one_device or device is None:
        return None
    await session.execute(select(Ticket.id).where(Ticket.id == ticket.id).with_for_update())
    holder = await _holder(session, ticket.id)
    if holder is not None and holder != device:
        opens, _ = window(webinar, settings)
        if await open_stays(session, ticket.id, opens - dt.timedelta(hours=1)):
            await see(session, ticket.id, device, now, admitted=False)
            logger.info("ticket in use on another device", extra={"ticket_id": str(ticket.id)})
            return InUse(webinar, ticket.id, email_hint(ticket.email))
    # The first browser, the holder itself, or a new one once the ticket has left the room.
    await see(session, ticket.id, device, now, admitted=True, bind=holder != device)
    return None
