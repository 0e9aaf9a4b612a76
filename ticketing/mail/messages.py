"""The `mail.message` job: one organizer's message to one ticket holder, and what became of it.

The recipient row, written with the message, is the record of that mail: it is sent while
the row is `queued` and marked `sent` with the job's done mark, so a job run again after its
mail went out finds it sent and does nothing. Its Message-ID is fixed per message and
ticket, so the rare second copy after a crash between acceptance and bookkeeping can be
dropped by the receiving side.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import bindparam, select

from ticketing.db.engine import autocommit, autocommit_session
from ticketing.db.models import Job, JobStatus, Message, MessageRecipient, Organizer, TicketDelivery, Webinar
from ticketing.jobs.registry import JobContext, PermanentError, job, try_limit, write_with_done
from ticketing.mail.compose import BadAddress, message_mail
from ticketing.mail.sending import create_mailer, temporary_reason

logger = logging.getLogger(__name__)

MAIL_ATTEMPTS = 16  # as every other mail: an SMTP outage of a few hours still ends in delivery

_RECIPIENT = (
    select(MessageRecipient, Message, Webinar, Organizer)
    .join(Message, Message.id == MessageRecipient.message_id)
    .join(Webinar, Webinar.id == Message.webinar_id)
    .join(Organizer, Organizer.id == Webinar.organizer_id)
    .where(MessageRecipient.message_id == bindparam("message_id"), MessageRecipient.ticket_id == bindparam("ticket_id"))
)
_recipients = MessageRecipient.__table__
_SET_STATUS = (
    _recipients.update()
    .where(_recipients.c.message_id == bindparam("m_id"), _recipients.c.ticket_id == bindparam("t_id"),
           _recipients.c.status != TicketDelivery.SENT.value)
    .values(status=bindparam("new_status"), error=bindparam("new_error"))
)


def _ids(payload: dict[str, Any]) -> tuple[uuid.UUID, uuid.UUID]:
    try:
        return uuid.UUID(str(payload["message_id"])), uuid.UUID(str(payload["ticket_id"]))
    except (KeyError, ValueError):
        raise PermanentError("malformed payload: message_id or ticket_id missing or not an id") from None


async def _record(ctx: JobContext, message_id: uuid.UUID, ticket_id: uuid.UUID, status: TicketDelivery,
                  error: str | None) -> None:
    """Best effort, like a ticket's delivery state: the mail has gone (or been refused) already."""
    row = {"m_id": message_id, "t_id": ticket_id, "new_status": status.value, "new_error": error}
    if status == TicketDelivery.SENT and write_with_done(_SET_STATUS, row):
        return
    try:
        async with autocommit(ctx.sessionmaker).connect() as connection:
            await connection.execute(_SET_STATUS, row)
    except Exception:
        logger.warning("message delivery state not recorded", exc_info=True,
                       extra={"message_id": str(message_id), "ticket_id": str(ticket_id)})


async def _is_last_try(ctx: JobContext, message_id: uuid.UUID, ticket_id: uuid.UUID) -> bool:
    try:
        async with autocommit_session(ctx.sessionmaker) as session:
            attempts = await session.scalar(select(Job.attempts).where(
                Job.dedupe_key == f"mail.message:{message_id}:{ticket_id}", Job.status == JobStatus.RUNNING))
    except Exception:
        logger.warning("could not tell whether this is the message's last try", exc_info=True)
        return False
    return attempts is not None and attempts >= try_limit("mail.message", MAIL_ATTEMPTS)


async def _abandoned(ctx: JobContext, payload: dict[str, Any], reason: str) -> None:
    """Parked after its worker died during the last try: failed, not queued for ever."""
    message_id, ticket_id = _ids(payload)
    await _record(ctx, message_id, ticket_id, TicketDelivery.FAILED,
                  "the mail may not have gone out: the worker sending it stopped during its last try")


@job("mail.message", max_attempts=MAIL_ATTEMPTS, abandoned=_abandoned)
async def send_message(ctx: JobContext, payload: dict[str, Any]) -> None:
    message_id, ticket_id = _ids(payload)
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_RECIPIENT, {"message_id": message_id, "ticket_id": ticket_id})).first()
    if row is None:
        logger.info("message skipped: its recipient no longer exists", extra={"message_id": str(message_id)})
        return
    recipient, message, webinar, organizer = row
    if recipient.status == TicketDelivery.SENT:
        return
    try:
        mail = message_mail(ctx.settings, message, webinar, organizer, email=recipient.email, name=recipient.name,
                            message_key=f"message.{message_id}.{ticket_id}")
    except BadAddress as error:
        await _record(ctx, message_id, ticket_id, TicketDelivery.FAILED, str(error)[:2000])
        raise PermanentError(str(error)) from None
    try:
        await create_mailer(ctx.settings).send(mail)
    except PermanentError as error:
        await _record(ctx, message_id, ticket_id, TicketDelivery.FAILED, str(error)[:2000])
        raise
    except Exception as error:
        if await _is_last_try(ctx, message_id, ticket_id):
            await _record(ctx, message_id, ticket_id, TicketDelivery.FAILED, temporary_reason(error)[:2000])
        raise
    await _record(ctx, message_id, ticket_id, TicketDelivery.SENT, None)
    logger.info("mail sent", extra={"kind": "message", "message_id": str(message_id), "ticket_id": str(ticket_id)})
