"""Free registrations: one seat for one confirmed address.

Registering mails a confirmation link; the seat is taken only when that link is opened, as a
free order settled like any other (so capacity is never passed). The same address again gets
its link once more instead of a second seat: the confirmation link while unconfirmed, a fresh
join link (the old one stops working) once confirmed. Confirmation codes are 256 random bits
of which only the SHA-256 is kept, like join codes; the plain code travels only in the mail job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.dialect import insert
from ticketing.db.models import Order, Registration, TicketStatus, Webinar, WebinarStatus
from ticketing.errors import Conflict, Invalid, NotFound
from ticketing.inputs import email_address
from ticketing.jobs import enqueue
from ticketing.orders.service import check_on_sale, register_free, start_order
from ticketing.tickets.service import hash_code, new_code, order_tickets, reissue
from ticketing.webinars.sales import refuse_if_closed
from ticketing.webinars.service import get_webinar

CONFIRM_MAIL = "mail.confirm_registration"
# A repeat registration within this time sends nothing more: one mail, not a mail bomb.
RESEND_AFTER = dt.timedelta(minutes=1)


def email_key(email: str) -> str:
    """One registration per mailbox however the address is capitalised."""
    return email.strip().lower()


async def _queue_confirmation(session: AsyncSession, registration: Registration, code: str) -> None:
    await enqueue(session, CONFIRM_MAIL, {"registration_id": str(registration.id), "code": code},
                  dedupe_key=f"{CONFIRM_MAIL}:{registration.id}:{registration.code_hash[:16]}")


async def register(session: AsyncSession, webinar_id: uuid.UUID, email: str | None, *, quantity: int = 1,
                   now: dt.datetime) -> None:
    """Register `email` for a free webinar: mail a confirmation link, or, for an address
    registered before, its link again (at most once a minute). Takes no seat.

    Invalid without an address, for more than one seat or a paid webinar, Conflict when registration has closed,
    SoldOut when no seat is left for a new registration. The answer is the same whether or not
    the address was registered before, so nobody learns who registered.
    """
    webinar = await get_webinar(session, webinar_id)
    if webinar.price_amount != 0:
        raise Invalid("this webinar is not free; buy a ticket instead")
    if quantity != 1:
        raise Invalid("a free registration is for one person; register each address on its own", field="quantity")
    refuse_if_closed(webinar, now)
    if not email or not email.strip():
        raise Invalid("enter the email address the link goes to", field="email")
    email = email_address(email)
    code, code_hash = new_code()
    key = email_key(email)
    created = await session.execute(
        insert(session, Registration)
        .values(id=uuid.uuid4(), webinar_id=webinar.id, email=email, email_key=key, code_hash=code_hash,
                sent_at=now, created_at=now)
        .on_conflict_do_nothing(index_elements=["webinar_id", "email_key"])
    )
    registration = await session.scalar(
        select(Registration).where(Registration.webinar_id == webinar.id, Registration.email_key == key).with_for_update()
    )
    assert registration is not None
    if created.rowcount == 1:
        check_on_sale(webinar, 1, now=now)  # SoldOut: the caller's transaction keeps nothing
        await _queue_confirmation(session, registration, code)
        return
    if now - registration.sent_at < RESEND_AFTER:
        return
    if registration.order_id is None:
        check_on_sale(webinar, 1, now=now)
        registration.code_hash = code_hash  # the earlier confirmation link gives way to this one
        registration.sent_at = now
        await _queue_confirmation(session, registration, code)
        return
    ticket = next((t for t in await order_tickets(session, registration.order_id) if t.status == TicketStatus.VALID), None)
    if ticket is not None:
        registration.sent_at = now
        await reissue(session, ticket, webinar, "mail.resend", f"mail.resend:{ticket.id}:{secrets.token_hex(8)}", now=now,
                      reason="resent")


async def register_offered(session: AsyncSession, webinar: Webinar, order: Order, *, now: dt.datetime) -> None:
    """Record the free seat a waitlist offer held, settled in `order`, as the confirmed
    registration of its address: the address was confirmed when it joined the list, and the
    same address registering again then gets its join link, as any registered address does."""
    assert order.email is not None
    key = email_key(order.email)
    _, code_hash = new_code()
    await session.execute(
        insert(session, Registration)
        .values(id=uuid.uuid4(), webinar_id=webinar.id, email=order.email, email_key=key, code_hash=code_hash,
                order_id=order.id, confirmed_at=now, sent_at=now, created_at=now)
        .on_conflict_do_nothing(index_elements=["webinar_id", "email_key"]))
    await session.execute(
        update(Registration).where(Registration.webinar_id == webinar.id, Registration.email_key == key,
                                   Registration.order_id.is_(None))
        .values(order_id=order.id, confirmed_at=now, code_hash=code_hash))


@dataclasses.dataclass(frozen=True)
class Confirmed:
    """A confirmed registration: `new` when this confirmation took the seat just now."""

    registration: Registration
    webinar: Webinar
    new: bool


async def webinar_of_code(session: AsyncSession, code: str) -> Webinar | None:
    """The webinar a confirmation link is for, so that its refusals can speak the webinar's language."""
    wanted = hash_code(code)
    registration = await session.scalar(select(Registration).where(Registration.code_hash == wanted))
    if registration is None or not hmac.compare_digest(registration.code_hash, wanted):
        return None
    return await session.get(Webinar, registration.webinar_id)


async def confirm(session: AsyncSession, code: str, *, now: dt.datetime) -> Confirmed:
    """Take the seat of the registration whose confirmation link carries `code` (once; opening
    the link again changes nothing). Its ticket and join mail are made as for a paid order.

    NotFound for an unknown or replaced code; Conflict when registration has closed, SoldOut
    when the last seat went meanwhile (the registration stays, unconfirmed).
    """
    wanted = hash_code(code)
    registration = await session.scalar(select(Registration).where(Registration.code_hash == wanted).with_for_update())
    if registration is None or not hmac.compare_digest(registration.code_hash, wanted):
        raise NotFound("this confirmation link is unknown, or a newer one was sent to the same address",
                       reason="unknown_confirmation")
    webinar = await get_webinar(session, registration.webinar_id)
    if registration.order_id is not None:
        return Confirmed(registration, webinar, new=False)
    if webinar.status == WebinarStatus.CANCELLED:
        raise Conflict("this webinar has been cancelled", reason="cancelled")
    if webinar.price_amount != 0:
        raise Conflict("this webinar is no longer free; buy a ticket on its page instead", reason="not_free")
    order, webinar = await start_order(session, webinar.id, 1, registration.email)
    await register_free(session, order, webinar)
    registration.order_id = order.id
    registration.confirmed_at = now
    await session.flush()
    return Confirmed(registration, webinar, new=True)


async def pending_confirmation(session: AsyncSession, registration_id: uuid.UUID, code: str
                               ) -> tuple[Registration, Webinar] | str:
    """The registration and webinar a confirmation mail is for, or why it should not go out."""
    registration = await session.get(Registration, registration_id)
    if registration is None:
        return "the registration no longer exists"
    if registration.order_id is not None:
        return "the registration is confirmed already"
    if not hmac.compare_digest(registration.code_hash, hash_code(code)):
        return "a newer link replaced this one"
    webinar = await get_webinar(session, registration.webinar_id)
    if webinar.status != WebinarStatus.SCHEDULED:
        return f"the webinar is {webinar.status.value}"
    return registration, webinar
