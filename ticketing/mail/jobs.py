"""The mail job kinds: join, resend, time-change update, reminders, revocation and refund notices.

Each handler reads what it needs in a short session, closes it, and only then talks to
the SMTP server, so a slow server never holds a database connection. A mail that no
longer makes sense when its turn comes (the ticket was revoked, a newer link replaced the
one it carries, the webinar moved) is skipped: the job is done without sending.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select, update

from ticketing.db import utcnow
from ticketing.db.models import Job, JobStatus, Order, Ticket, TicketDelivery, TicketStatus, Webinar, WebinarStatus
from ticketing.jobs.registry import JobContext, PermanentError, job, try_limit
from ticketing.mail.compose import BadAddress, order_refunded_mail, revoked_mail, ticket_mail
from ticketing.mail.sending import create_mailer, temporary_reason
from ticketing.tickets.service import hash_code, reissue

logger = logging.getLogger(__name__)

# With the worker's backoff (5 s doubling to a 1 h cap, jittered) 16 tries span at least
# about 3.5 hours: an SMTP outage of an hour or two still ends in delivery.
MAIL_ATTEMPTS = 16


def _uuid(payload: dict[str, Any], name: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(payload[name]))
    except (KeyError, ValueError):
        raise PermanentError(f"malformed payload: {name} missing or not an id") from None


def _code(payload: dict[str, Any]) -> str:
    code = payload.get("code")
    if not isinstance(code, str) or not code:
        raise PermanentError("malformed payload: the join code is missing")
    return code


async def _ticket(ctx: JobContext, ticket_id: uuid.UUID) -> tuple[Ticket, Webinar] | None:
    async with ctx.sessionmaker() as session:
        row = (await session.execute(
            select(Ticket, Webinar).join(Webinar, Webinar.id == Ticket.webinar_id).where(Ticket.id == ticket_id)
        )).first()
    if row is None:
        logger.info("mail skipped: the ticket no longer exists", extra={"ticket_id": str(ticket_id)})
        return None
    return row[0], row[1]


def _still_admits(ticket: Ticket, webinar: Webinar, code: str) -> str | None:
    """Why a mail carrying `code` should not go out any more, or None when it should."""
    if ticket.status != TicketStatus.VALID:
        return f"the ticket is {ticket.status.value}"
    if webinar.status != WebinarStatus.SCHEDULED:
        return f"the webinar is {webinar.status.value}"
    if hash_code(code) != ticket.code_hash:
        return "a newer link replaced this one"
    if utcnow() >= webinar.ends_at:
        return "the webinar is over"
    return None


async def _send(ctx: JobContext, build) -> None:
    try:
        message = build()
    except BadAddress as error:
        raise PermanentError(str(error)) from None
    await create_mailer(ctx.settings).send(message)


async def _send_link(ctx: JobContext, payload: dict[str, Any], job_kind: str, kind: str, message_key: str,
                     sequence: int | None = None) -> None:
    ticket_id, code = _uuid(payload, "ticket_id"), _code(payload)
    found = await _ticket(ctx, ticket_id)
    if found is None:
        return
    ticket, webinar = found
    why_not = _still_admits(ticket, webinar, code)
    if why_not is None and sequence is not None and sequence != webinar.sequence:
        why_not = "the webinar's time changed again"
    if why_not is not None:
        logger.info("mail skipped", extra={"kind": kind, "ticket_id": str(ticket.id), "reason": why_not})
        return
    try:
        await _send(ctx, lambda: ticket_mail(ctx.settings, kind, ticket, webinar, code, message_key=message_key))
    except PermanentError as error:
        # The address was refused for good: the organizer sees it on the attendee list and
        # can correct the address and resend.
        await _record_delivery(ctx, ticket, code, TicketDelivery.FAILED, str(error)[:2000])
        raise
    except Exception as error:
        # A failure that may pass: the job is retried, and the ticket shows why it is still
        # queued; after the last try it has failed for good, with that reason.
        last = await _is_last_try(ctx, job_kind, payload)
        await _record_delivery(ctx, ticket, code, TicketDelivery.FAILED if last else TicketDelivery.QUEUED,
                               temporary_reason(error)[:2000])
        raise
    if ticket.delivery_status != TicketDelivery.SENT or ticket.delivery_error is not None:
        await _record_delivery(ctx, ticket, code, TicketDelivery.SENT, None)
    logger.info("mail sent", extra={"kind": kind, "ticket_id": str(ticket.id)})


async def _is_last_try(ctx: JobContext, job_kind: str, payload: dict[str, Any]) -> bool:
    """Whether the running job of `job_kind` carrying this payload's code is on its last try
    (the worker then parks it as dead). The worker counts a try when it claims the job, so
    the row's `attempts` is this run's number; the limit is the kind's, as the worker's."""
    try:
        async with ctx.sessionmaker() as session:
            attempts = await session.scalar(
                select(func.max(Job.attempts)).where(
                    Job.kind == job_kind, Job.status == JobStatus.RUNNING,
                    Job.payload["ticket_id"].as_string() == str(payload.get("ticket_id")),
                    Job.payload["code"].as_string() == str(payload.get("code")))
            )
    except Exception:
        # Best effort, as recording the outcome is: the job's own failure is what counts.
        logger.warning("could not tell whether this is the mail's last try", exc_info=True)
        return False
    return attempts is not None and attempts >= try_limit(job_kind, MAIL_ATTEMPTS)


async def _record_delivery(ctx: JobContext, ticket: Ticket, code: str, status: TicketDelivery, error: str | None) -> None:
    """Note what became of a mail carrying `code`, unless a newer link replaced it meanwhile
    (that one's mail has its own outcome to record). Best effort: the mail has gone (or been
    refused) already, and failing the job here would send it a second time."""
    try:
        async with ctx.sessionmaker.begin() as session:
            await session.execute(
                update(Ticket).where(Ticket.id == ticket.id, Ticket.code_hash == hash_code(code))
                .values(delivery_status=status, delivery_error=error)
                .execution_options(synchronize_session=False)
            )
    except Exception:
        logger.warning("ticket delivery state not recorded", exc_info=True,
                       extra={"ticket_id": str(ticket.id), "delivery_status": status.value})


@job("mail.join", max_attempts=MAIL_ATTEMPTS)
async def send_join(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The join mail of a new ticket."""
    await _send_link(ctx, payload, "mail.join", "join",
                     f"join.{payload.get('ticket_id')}.{hash_code(_code(payload))[:12]}")


@job("mail.resend", max_attempts=MAIL_ATTEMPTS)
async def send_resend(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The join mail again, with the new link an organizer's resend made."""
    await _send_link(ctx, payload, "mail.resend", "resend",
                     f"resend.{payload.get('ticket_id')}.{hash_code(_code(payload))[:12]}")


@job("mail.updated", max_attempts=MAIL_ATTEMPTS)
async def send_updated(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The new time and a new link after the organizer moved the webinar."""
    sequence = payload.get("sequence")
    if not isinstance(sequence, int):
        raise PermanentError("malformed payload: sequence missing")
    await _send_link(ctx, payload, "mail.updated", "updated", f"updated.{payload.get('ticket_id')}.{sequence}", sequence)


@job("mail.reminder", max_attempts=MAIL_ATTEMPTS)
async def send_reminder(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A reminder 24 hours or 15 minutes before the start, unless the start has passed."""
    which, sequence = payload.get("which"), payload.get("sequence")
    if which not in ("24h", "15m") or not isinstance(sequence, int):
        raise PermanentError("malformed payload: which or sequence missing")
    found = await _ticket(ctx, _uuid(payload, "ticket_id"))
    if found is None:
        return
    _, webinar = found
    if utcnow() >= webinar.starts_at:
        # The worker was behind: a reminder after the start only confuses.
        logger.info("reminder skipped: the webinar has started", extra={"ticket_id": payload.get("ticket_id")})
        return
    await _send_link(ctx, payload, "mail.reminder", f"reminder_{which}", f"reminder-{which}.{payload.get('ticket_id')}.{sequence}",
                     sequence)


@job("mail.revoked", max_attempts=MAIL_ATTEMPTS)
async def send_revoked(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Tell the holder their ticket no longer admits them, and why (no link)."""
    reason = str(payload.get("reason") or "organizer")
    found = await _ticket(ctx, _uuid(payload, "ticket_id"))
    if found is None:
        return
    ticket, webinar = found
    if ticket.status != TicketStatus.REVOKED:
        logger.info("revocation mail skipped: the ticket is valid again", extra={"ticket_id": str(ticket.id)})
        return
    key = f"revoked.{ticket.id}.{int(ticket.revoked_at.timestamp()) if ticket.revoked_at else 0}"
    await _send(ctx, lambda: revoked_mail(ctx.settings, ticket, webinar, reason, message_key=key))
    logger.info("mail sent", extra={"kind": "revoked", "ticket_id": str(ticket.id), "reason": reason})


@job("mail.order_refunded", max_attempts=MAIL_ATTEMPTS)
async def send_order_refunded(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Tell a buyer who never got tickets that their payment was refunded, and why."""
    order_id = _uuid(payload, "order_id")
    reason = str(payload.get("reason") or "")
    async with ctx.sessionmaker() as session:
        row = (await session.execute(
            select(Order, Webinar).join(Webinar, Webinar.id == Order.webinar_id).where(Order.id == order_id)
        )).first()
    if row is None:
        logger.info("mail skipped: the order no longer exists", extra={"order_id": str(order_id)})
        return
    order, webinar = row
    if not order.email:
        raise PermanentError("the order has no email address")
    await _send(ctx, lambda: order_refunded_mail(ctx.settings, order, webinar, reason,
                                                 message_key=f"refunded.{order.id}"))
    logger.info("mail sent", extra={"kind": "order_refunded", "order_id": str(order.id), "reason": reason})


@job("webinar.time_changed")
async def time_changed(ctx: JobContext, payload: dict[str, Any]) -> None:
    """After a time change: every valid ticket gets a new code, an update mail with the new
    time and invitation, and reminders for the new time (the old pending ones are dropped)."""
    webinar_id = _uuid(payload, "webinar_id")
    sequence = payload.get("sequence")
    if not isinstance(sequence, int):
        raise PermanentError("malformed payload: sequence missing")
    now = utcnow()
    async with ctx.sessionmaker.begin() as session:
        webinar = await session.scalar(select(Webinar).where(Webinar.id == webinar_id).with_for_update())
        if webinar is None or webinar.status != WebinarStatus.SCHEDULED or webinar.sequence != sequence:
            # Cancelled, or moved again: the newer change's job does the work.
            logger.info("time change superseded", extra={"webinar_id": str(webinar_id), "sequence": sequence})
            return
        tickets = list(await session.scalars(
            select(Ticket).where(Ticket.webinar_id == webinar.id, Ticket.status == TicketStatus.VALID).with_for_update()
        ))
        updated = 0
        for ticket in tickets:
            updated += await reissue(session, ticket, webinar, "mail.updated", f"mail.updated:{ticket.id}:{sequence}",
                                     now=now, sequence=sequence)
    logger.info("time change: update mails queued", extra={"webinar_id": str(webinar_id), "count": updated})
