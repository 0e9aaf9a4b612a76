"""Writing to a webinar's ticket holders: a subject and a Markdown body, checked, previewed,
sent as one queued mail per current holder (exactly once: one recipient row and one
deduplicated job each, written with the message), at most a few per webinar and hour, and
listed with what became of each mail."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.dialect import insert
from ticketing.db.models import (
    Message,
    MessageRecipient,
    Organizer,
    Ticket,
    TicketDelivery,
    TicketStatus,
    WebinarStatus,
)
from ticketing.errors import N_, Conflict, Invalid, RateLimited, Text
from ticketing.inputs import has_control
from ticketing.jobs import NewJob, enqueue_many
from ticketing.webinars.service import get_own_webinar

SUBJECT_LIMIT = 200
BODY_LIMIT = 20_000
# Who still holds a seat: valid tickets, and those that expired only because the webinar
# ended (slides afterwards reach everyone who had a seat); revoked ones are nobody's.
HOLDING = (TicketStatus.VALID, TicketStatus.EXPIRED)
WINDOW = dt.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Draft:
    subject: str
    body: str
    recipients: int


@dataclasses.dataclass(frozen=True)
class SentMessage:
    message: Message
    counts: dict[str, int]  # recipients by mail state: queued, sent, failed

    @property
    def recipients(self) -> int:
        return sum(self.counts.values())


def _text(data: Mapping[str, Any], name: str, limit: int, *, newlines: bool) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(Text(N_("%(name)s is required"), name=name), field=name)
    value = value.replace("\r\n", "\n").strip()
    if len(value) > limit:
        raise Invalid(Text(N_("%(name)s must be at most %(limit)d characters"), name=name, limit=limit), field=name)
    if has_control(value, allow_newlines=newlines):
        raise Invalid(Text(N_("%(name)s must not contain control characters"), name=name), field=name)
    return value


def read_input(data: Mapping[str, Any]) -> tuple[str, str]:
    """The subject and body of a message from API or form input; Invalid names the field."""
    return _text(data, "subject", SUBJECT_LIMIT, newlines=False), _text(data, "body", BODY_LIMIT, newlines=True)


def _holders(webinar_id: uuid.UUID):
    return select(Ticket.id, Ticket.email, Ticket.name).where(Ticket.webinar_id == webinar_id,
                                                              Ticket.status.in_(HOLDING))


async def preview(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID,
                  data: Mapping[str, Any]) -> Draft:
    """The message as it would go out, and to how many holders; nothing is stored."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    subject, body = read_input(data)
    count = await session.scalar(select(func.count()).select_from(_holders(webinar.id).subquery()))
    return Draft(subject=subject, body=body, recipients=count or 0)


async def send_message(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID, data: Mapping[str, Any], *,
                       per_hour: int, now: dt.datetime | None = None) -> SentMessage:
    """Store the message with one recipient row and one `mail.message` job per current holder,
    in the caller's transaction. Conflict for a cancelled webinar or one nobody holds a seat of;
    RateLimited after `per_hour` messages to this webinar within the last hour."""
    now = now or utcnow()
    subject, body = read_input(data)
    # The row lock makes the count below and the insert one step, however many requests race.
    webinar = await get_own_webinar(session, organizer, webinar_id, for_update=True)
    if webinar.status == WebinarStatus.CANCELLED:
        raise Conflict(Text(N_("this webinar is cancelled; its buyers have been told")))
    recent = list(await session.scalars(
        select(Message.created_at).where(Message.webinar_id == webinar.id, Message.created_at > now - WINDOW)
        .order_by(Message.created_at)))
    if len(recent) >= per_hour:
        wait = int((recent[0] + WINDOW - now).total_seconds()) + 1
        raise RateLimited(f"at most {per_hour} messages to one webinar's attendees per hour; the next one in"
                      f" {max(1, -(-wait // 60))} minutes", retry_after=max(1, wait))
    holders = (await session.execute(_holders(webinar.id).order_by(Ticket.created_at, Ticket.seq))).all()
    if not holders:
        raise Conflict(Text(N_("nobody holds a ticket to this webinar yet")))
    message = Message(id=uuid.uuid4(), webinar_id=webinar.id, subject=subject, body=body, created_at=now)
    session.add(message)
    await session.flush()
    await session.execute(insert(session, MessageRecipient).values([
        {"message_id": message.id, "ticket_id": ticket_id, "email": email, "name": name or "",
         "status": TicketDelivery.QUEUED} for ticket_id, email, name in holders]))
    await enqueue_many(session, [
        NewJob("mail.message", {"message_id": str(message.id), "ticket_id": str(ticket_id)},
               dedupe_key=f"mail.message:{message.id}:{ticket_id}") for ticket_id, _, _ in holders])
    return SentMessage(message=message, counts={"queued": len(holders), "sent": 0, "failed": 0})


async def list_messages(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID) -> list[SentMessage]:
    """The webinar's messages, newest first, each with its recipients counted by mail state."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    messages = list(await session.scalars(
        select(Message).where(Message.webinar_id == webinar.id).order_by(Message.created_at.desc(), Message.id)))
    counts: dict[uuid.UUID, dict[str, int]] = {m.id: {"queued": 0, "sent": 0, "failed": 0} for m in messages}
    if messages:
        rows = await session.execute(
            select(MessageRecipient.message_id, MessageRecipient.status, func.count())
            .where(MessageRecipient.message_id.in_(list(counts)))
            .group_by(MessageRecipient.message_id, MessageRecipient.status))
        for message_id, status, count in rows:
            counts[message_id][TicketDelivery(status).value] = count
    return [SentMessage(message=m, counts=counts[m.id]) for m in messages]


def message_json(sent: SentMessage) -> dict[str, Any]:
    m = sent.message
    return {"id": str(m.id), "webinar_id": str(m.webinar_id), "subject": m.subject, "body": m.body,
            "created_at": m.created_at, "recipients": sent.recipients, **sent.counts}
