"""The mail job kinds: the buyer's order mail, join (and an attendee's assigned seat), resend,
time-change updates, reminders, revocation and refund notices.

Each handler reads what it needs in a short session, closes it, and only then talks to
the SMTP server, so a slow server never holds a database connection. A mail that no
longer makes sense when its turn comes (the ticket was revoked, a newer link replaced the
one it carries, the webinar moved) is skipped: the job is done without sending.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
import weakref
from typing import Any

from sqlalchemy import bindparam, func, select

from ticketing.db import utcnow
from ticketing.db.engine import autocommit, autocommit_session
from ticketing.db.models import (
    Job,
    JobStatus,
    Order,
    OrderStatus,
    Organizer,
    Ticket,
    TicketDelivery,
    TicketStatus,
    Webinar,
    WebinarStatus,
)
from ticketing.jobs import enqueue, enqueue_many
from ticketing.jobs.registry import JobContext, PermanentError, job, try_limit, write_with_done
from ticketing.mail.compose import (
    BadAddress,
    dispute_closed_mail,
    order_mail,
    order_refunded_mail,
    order_reminder_mail,
    order_updated_mail,
    revoked_mail,
    ticket_mail,
)
from ticketing.mail.sending import create_mailer, temporary_reason
from ticketing.orders.service import priced_lines
from ticketing.payments.invoices import with_invoice
from ticketing.tickets.service import buyer_holds, hash_code, order_reminder_jobs, reissue, seat_code

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


@dataclasses.dataclass(frozen=True)
class _Seat:
    ticket: Ticket
    webinar: Webinar
    order: Order
    organizer: Organizer


# The statements of the mail jobs, built once: building one again for every mail (and its
# cache key) costs more than running it.
_SEAT = (
    select(Ticket, Webinar, Order, Organizer)
    .join(Webinar, Webinar.id == Ticket.webinar_id)
    .join(Order, Order.id == Ticket.order_id)
    .join(Organizer, Organizer.id == Webinar.organizer_id)
    .where(Ticket.id == bindparam("ticket_id"))
)


_ORDER_WITH_SEATS = (
    select(Order, Webinar, Organizer, Ticket)
    .join(Webinar, Webinar.id == Order.webinar_id)
    .join(Organizer, Organizer.id == Webinar.organizer_id)
    .outerjoin(Ticket, Ticket.order_id == Order.id)
    .where(Order.id == bindparam("order_id"))
    .order_by(Ticket.seq)
)
_ORDERS_WITH_SEATS = (
    select(Order, Webinar, Organizer, Ticket)
    .join(Webinar, Webinar.id == Order.webinar_id)
    .join(Organizer, Organizer.id == Webinar.organizer_id)
    .outerjoin(Ticket, Ticket.order_id == Order.id)
    .where(Order.id.in_(bindparam("order_ids", expanding=True)))
    .order_by(Order.id, Ticket.seq)
)


class _OrderReads:
    """The order mails' reads of one worker, made together: the jobs a worker claims at once
    start in the same turn of the event loop, and each asks for its order there; one SELECT
    then answers all of them. A read per mail was a round trip per mail, and on a busy machine
    the socket write of each round trip cost more than the rows it fetched."""

    def __init__(self, sessionmaker) -> None:
        self.sessionmaker = sessionmaker
        self.waiting: dict[uuid.UUID, list[asyncio.Future]] = {}
        self.reading: asyncio.Task | None = None

    async def rows(self, order_id: uuid.UUID) -> list:
        """The order's rows as `_ORDER_WITH_SEATS` gives them, read with those of the others asking now."""
        found = asyncio.get_running_loop().create_future()
        if not self.waiting:
            # It runs after the jobs already started in this turn have asked too.
            self.reading = asyncio.get_running_loop().create_task(self._read())
        self.waiting.setdefault(order_id, []).append(found)
        return await found

    async def _read(self) -> None:
        waiting, self.waiting = self.waiting, {}
        try:
            async with autocommit_session(self.sessionmaker) as session:
                rows = (await session.execute(_ORDERS_WITH_SEATS, {"order_ids": list(waiting)})).all()
        except BaseException as error:
            for futures in waiting.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(error)
            if not isinstance(error, Exception):
                raise
            return
        by_order: dict[uuid.UUID, list] = {}
        for row in rows:
            by_order.setdefault(row[0].id, []).append(row)
        for order_id, futures in waiting.items():
            for future in futures:
                if not future.done():
                    future.set_result(by_order.get(order_id, []))


_READS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _OrderReads]] = weakref.WeakKeyDictionary()


def _order_reads(ctx: JobContext) -> _OrderReads:
    """This event loop's reader for the worker's database (a reader's futures belong to one loop)."""
    readers = _READS.setdefault(asyncio.get_running_loop(), {})
    reader = readers.get(id(ctx.sessionmaker))
    if reader is None or reader.sessionmaker is not ctx.sessionmaker:
        reader = readers[id(ctx.sessionmaker)] = _OrderReads(ctx.sessionmaker)
    return reader
_tickets = Ticket.__table__
_SET_DELIVERY = (
    _tickets.update()
    # Only while the ticket still has the code the mail carried: a newer link's mail has its
    # own outcome to record.
    .where(_tickets.c.id == bindparam("t_id"), _tickets.c.code_hash == bindparam("t_hash"))
    .values(delivery_status=bindparam("new_status"), delivery_error=bindparam("new_error"))
)


async def _seat(ctx: JobContext, ticket_id: uuid.UUID) -> _Seat | None:
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_SEAT, {"ticket_id": ticket_id})).first()
    if row is None:
        logger.info("mail skipped: the ticket no longer exists", extra={"ticket_id": str(ticket_id)})
        return None
    return _Seat(*row)


async def _ticket(ctx: JobContext, ticket_id: uuid.UUID) -> tuple[Ticket, Webinar] | None:
    seat = await _seat(ctx, ticket_id)
    return None if seat is None else (seat.ticket, seat.webinar)


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
    seat = await _seat(ctx, ticket_id)
    if seat is None:
        return
    ticket, webinar = seat.ticket, seat.webinar
    why_not = _still_admits(ticket, webinar, code)
    if why_not is None and sequence is not None and sequence != webinar.sequence:
        why_not = "the webinar's time changed again"
    if why_not is not None:
        logger.info("mail skipped", extra={"kind": kind, "ticket_id": str(ticket.id), "reason": why_not})
        return
    buyer = (seat.order.buyer_name or seat.order.email or "") if kind == "assigned" else None
    try:
        await _send(ctx, lambda: ticket_mail(ctx.settings, kind, ticket, webinar, code, message_key=message_key,
                                             organizer=seat.organizer, buyer=buyer))
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


async def _is_last_try(ctx: JobContext, job_kind: str, payload: dict[str, Any], id_field: str = "ticket_id") -> bool:
    """Whether the running job of `job_kind` carrying this payload's code is on its last try
    (the worker then parks it as dead). The worker counts a try when it claims the job, so
    the row's `attempts` is this run's number; the limit is the kind's, as the worker's."""
    try:
        async with autocommit_session(ctx.sessionmaker) as session:
            attempts = await session.scalar(
                select(func.max(Job.attempts)).where(
                    Job.kind == job_kind, Job.status == JobStatus.RUNNING,
                    Job.payload[id_field].as_string() == str(payload.get(id_field)),
                    Job.payload["code"].as_string() == str(payload.get("code")))
            )
    except Exception:
        # Best effort, as recording the outcome is: the job's own failure is what counts.
        logger.warning("could not tell whether this is the mail's last try", exc_info=True)
        return False
    return attempts is not None and attempts >= try_limit(job_kind, MAIL_ATTEMPTS)


async def _record_delivery(ctx: JobContext, ticket: Ticket, code: str, status: TicketDelivery, error: str | None) -> None:
    """Note what became of a mail carrying `code` on its ticket (see `_record_order_delivery`)."""
    await _record_order_delivery(ctx, [ticket], {ticket.id: code}, status, error, force=True)


_ABANDONED = "the mail may not have gone out: the worker sending it stopped during its last try"


async def _link_abandoned(ctx: JobContext, payload: dict[str, Any], reason: str) -> None:
    """A ticket's mail job parked after its worker died: its delivery failed, not queued for ever."""
    ticket_id, code = _uuid(payload, "ticket_id"), _code(payload)
    ticket = Ticket(id=ticket_id)
    await _record_delivery(ctx, ticket, code, TicketDelivery.FAILED, _ABANDONED)


def _buyer_codes(order: Order, tickets: list[Ticket], order_code: str) -> dict[uuid.UUID, str]:
    """The links of the seats still with the buyer, by ticket: the order mail carries them (a
    seat given to someone else has its own mail), so their delivery state is that mail's."""
    return {t.id: code for t in tickets if buyer_holds(t, order) and (code := seat_code(order_code, t)) is not None}


async def _order_abandoned(ctx: JobContext, payload: dict[str, Any], reason: str) -> None:
    """The order mail's job parked after its worker died: the seats it carried failed delivery."""
    order_id, order_code = _uuid(payload, "order_id"), _code(payload)
    async with autocommit_session(ctx.sessionmaker) as session:
        rows = (await session.execute(_ORDER_WITH_SEATS, {"order_id": order_id})).all()
    if not rows:
        return
    order, tickets = rows[0][0], [row[3] for row in rows if row[3] is not None]
    codes = _buyer_codes(order, tickets, order_code)
    await _record_order_delivery(ctx, tickets, codes, TicketDelivery.FAILED, _ABANDONED, force=True)


@job("mail.join", max_attempts=MAIL_ATTEMPTS, abandoned=_link_abandoned)
async def send_join(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The join mail of a new ticket."""
    await _send_link(ctx, payload, "mail.join", "join",
                     f"join.{payload.get('ticket_id')}.{hash_code(_code(payload))[:12]}")


@job("mail.assigned", max_attempts=MAIL_ATTEMPTS, abandoned=_link_abandoned)
async def send_assigned(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The join mail of an attendee the buyer gave a seat to, with the attendee's own link."""
    await _send_link(ctx, payload, "mail.assigned", "assigned", f"assigned.{payload.get('ticket_id')}.{hash_code(_code(payload))[:12]}")


def _order_with_webinar(order_id: uuid.UUID):
    """The statement for an order with its webinar and the webinar's organizer (the mails
    about an order need all three: content, language, Reply-To and footer)."""
    return (select(Order, Webinar, Organizer)
            .join(Webinar, Webinar.id == Order.webinar_id)
            .join(Organizer, Organizer.id == Webinar.organizer_id)
            .where(Order.id == order_id))


@job("mail.order", max_attempts=MAIL_ATTEMPTS, abandoned=_order_abandoned)
async def send_order(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The buyer's one mail about a paid order: what was paid, the order page link, and the
    join link when the order has one seat. Skipped when the order was refunded or disputed
    meanwhile (that notice says enough)."""
    order_id, order_code = _uuid(payload, "order_id"), _code(payload)
    rows = await _order_reads(ctx).rows(order_id)
    if not rows:
        logger.info("mail skipped: the order no longer exists", extra={"order_id": str(order_id)})
        return
    order, webinar, organizer, _ = rows[0]
    tickets = [row[3] for row in rows if row[3] is not None]
    if order.code_hash != hash_code(order_code):
        raise PermanentError("the order code in the payload is not this order's")
    if order.status != OrderStatus.PAID or not any(t.status == TicketStatus.VALID for t in tickets):
        logger.info("order mail skipped", extra={"order_id": str(order.id), "status": order.status.value})
        return
    codes = _buyer_codes(order, tickets, order_code)
    join_code = None
    if order.quantity == 1 and tickets and tickets[0].status == TicketStatus.VALID:
        join_code = codes.get(tickets[0].id)
    lines = []
    if webinar.typed:
        async with autocommit_session(ctx.sessionmaker) as session:
            lines = [(kind.name, count, unit) for kind, count, unit in await priced_lines(session, order)]
    # The checkout named its invoice by id only: ask Stripe for its links, so this mail has them.
    await with_invoice(ctx, order)
    try:
        await _send(ctx, lambda: order_mail(ctx.settings, order, webinar, tickets, order_code, join_code,
                                            message_key=f"order.{order.id}", organizer=organizer, lines=lines))
    except PermanentError as error:
        await _record_order_delivery(ctx, tickets, codes, TicketDelivery.FAILED, str(error)[:2000])
        raise
    except Exception as error:
        last = await _is_last_try(ctx, "mail.order", payload, "order_id")
        await _record_order_delivery(ctx, tickets, codes, TicketDelivery.FAILED if last else TicketDelivery.QUEUED,
                                     temporary_reason(error)[:2000])
        raise
    await _record_order_delivery(ctx, tickets, codes, TicketDelivery.SENT, None)
    logger.info("mail sent", extra={"kind": "order", "order_id": str(order.id)})


async def _record_order_delivery(ctx: JobContext, tickets: list[Ticket], codes: dict[uuid.UUID, str],
                                 status: TicketDelivery, error: str | None, *, force: bool = False) -> None:
    """Note what became of a mail on the seats whose links it carried (`codes`), unless a newer
    link replaced one meanwhile (that one's mail has its own outcome to record). A mail
    accepted is noted with the job's done mark (one transaction for a batch of mails); a
    failure at once, since the job does not end done. Best effort: the mail has gone (or been
    refused) already, and failing the job here would send it a second time."""
    rows = [{"t_id": t.id, "t_hash": hash_code(codes[t.id]), "new_status": status.value, "new_error": error}
            for t in tickets if t.id in codes and (force or (t.delivery_status, t.delivery_error) != (status, error))]
    if not rows:
        return
    if status == TicketDelivery.SENT and all(write_with_done(_SET_DELIVERY, row) for row in rows):
        return
    try:
        async with autocommit(ctx.sessionmaker).connect() as connection:
            await connection.execute(_SET_DELIVERY, rows)
    except Exception:
        logger.warning("ticket delivery state not recorded", exc_info=True,
                       extra={"ticket_ids": [str(row["t_id"]) for row in rows], "delivery_status": status.value})


@job("mail.order_updated", max_attempts=MAIL_ATTEMPTS)
async def send_order_updated(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The new time, to a buyer whose seats are still on their order page (their links stay)."""
    order_id, sequence = _uuid(payload, "order_id"), payload.get("sequence")
    if not isinstance(sequence, int):
        raise PermanentError("malformed payload: sequence missing")
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_order_with_webinar(order_id))).first()
    if row is None:
        return
    order, webinar, organizer = row
    if webinar.sequence != sequence or webinar.status != WebinarStatus.SCHEDULED or order.status != OrderStatus.PAID:
        logger.info("order update skipped", extra={"order_id": str(order_id), "sequence": sequence})
        return
    key = f"order-updated.{order.id}.{sequence}"
    await _send(ctx, lambda: order_updated_mail(ctx.settings, order, webinar, message_key=key, organizer=organizer))
    logger.info("mail sent", extra={"kind": "order_updated", "order_id": str(order.id)})


@job("mail.order_reminder", max_attempts=MAIL_ATTEMPTS)
async def send_order_reminder(ctx: JobContext, payload: dict[str, Any]) -> None:
    """A reminder to a buyer whose seats are still on their order page; skipped once every
    seat has been given out (their holders get their own), after the start, or after a move."""
    order_id, which, sequence = _uuid(payload, "order_id"), payload.get("which"), payload.get("sequence")
    if which not in ("24h", "15m") or not isinstance(sequence, int):
        raise PermanentError("malformed payload: which or sequence missing")
    async with autocommit_session(ctx.sessionmaker) as session:
        rows = (await session.execute(_ORDER_WITH_SEATS, {"order_id": order_id})).all()
    if not rows:
        return
    order, webinar, organizer, _ = rows[0]
    tickets = [row[3] for row in rows if row[3] is not None]
    waiting = [t for t in tickets if t.status == TicketStatus.VALID and t.assigned_at is None]
    if (not waiting or order.status != OrderStatus.PAID or webinar.status != WebinarStatus.SCHEDULED
            or webinar.sequence != sequence or utcnow() >= webinar.starts_at):
        logger.info("order reminder skipped", extra={"order_id": str(order_id), "which": which})
        return
    key = f"order-reminder-{which}.{order.id}.{sequence}"
    await _send(ctx, lambda: order_reminder_mail(ctx.settings, order, webinar, f"reminder_{which}", len(waiting),
                                                 message_key=key, organizer=organizer))
    logger.info("mail sent", extra={"kind": "order_reminder", "order_id": str(order.id), "which": which})


@job("mail.resend", max_attempts=MAIL_ATTEMPTS, abandoned=_link_abandoned)
async def send_resend(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The join mail again, with the new link an organizer's resend made."""
    await _send_link(ctx, payload, "mail.resend", "resend",
                     f"resend.{payload.get('ticket_id')}.{hash_code(_code(payload))[:12]}")


@job("mail.updated", max_attempts=MAIL_ATTEMPTS, abandoned=_link_abandoned)
async def send_updated(ctx: JobContext, payload: dict[str, Any]) -> None:
    """The new time and a new link after the organizer moved the webinar."""
    sequence = payload.get("sequence")
    if not isinstance(sequence, int):
        raise PermanentError("malformed payload: sequence missing")
    await _send_link(ctx, payload, "mail.updated", "updated", f"updated.{payload.get('ticket_id')}.{sequence}", sequence)


@job("mail.reminder", max_attempts=MAIL_ATTEMPTS, abandoned=_link_abandoned)
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


async def _given_seats(ctx: JobContext, ids: object) -> list[Ticket]:
    """The seats a buyer gave away that were revoked with theirs (named in the buyer's notice)."""
    if not isinstance(ids, list) or not ids:
        return []
    try:
        wanted = [uuid.UUID(str(i)) for i in ids]
    except ValueError:
        raise PermanentError("malformed payload: given seats") from None
    async with autocommit_session(ctx.sessionmaker) as session:
        return list(await session.scalars(select(Ticket).where(Ticket.id.in_(wanted)).order_by(Ticket.seq)))


@job("mail.revoked", max_attempts=MAIL_ATTEMPTS)
async def send_revoked(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Tell the holder their ticket no longer admits them, and why (no link)."""
    reason = str(payload.get("reason") or "organizer")
    refund_amount = payload.get("refund_amount")
    if not isinstance(refund_amount, int) or isinstance(refund_amount, bool):
        refund_amount = None
    seat = await _seat(ctx, _uuid(payload, "ticket_id"))
    if seat is None:
        return
    ticket, webinar = seat.ticket, seat.webinar
    if ticket.status != TicketStatus.REVOKED:
        logger.info("revocation mail skipped: the ticket is valid again", extra={"ticket_id": str(ticket.id)})
        return
    given = await _given_seats(ctx, payload.get("given"))
    to_buyer = payload.get("to_buyer") is True
    key = f"revoked.{'buyer.' if to_buyer else ''}{ticket.id}.{int(ticket.revoked_at.timestamp()) if ticket.revoked_at else 0}"
    await _send(ctx, lambda: revoked_mail(ctx.settings, ticket, webinar, reason, message_key=key,
                                          organizer=seat.organizer, order=seat.order, refund_amount=refund_amount,
                                          given=given, buyer_only=to_buyer))
    logger.info("mail sent", extra={"kind": "revoked", "ticket_id": str(ticket.id), "reason": reason})


@job("mail.order_refunded", max_attempts=MAIL_ATTEMPTS)
async def send_order_refunded(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Tell a buyer who never got tickets that their payment was refunded, and why."""
    order_id = _uuid(payload, "order_id")
    reason = str(payload.get("reason") or "")
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_order_with_webinar(order_id))).first()
    if row is None:
        logger.info("mail skipped: the order no longer exists", extra={"order_id": str(order_id)})
        return
    order, webinar, organizer = row
    if not order.email:
        raise PermanentError("the order has no email address")
    await _send(ctx, lambda: order_refunded_mail(ctx.settings, order, webinar, reason,
                                                 message_key=f"refunded.{order.id}", organizer=organizer))
    logger.info("mail sent", extra={"kind": "order_refunded", "order_id": str(order.id), "reason": reason})


@job("mail.dispute_closed", max_attempts=MAIL_ATTEMPTS)
async def send_dispute_closed(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Tell the organizer a chargeback over one of their orders was won or lost."""
    order_id = _uuid(payload, "order_id")
    async with autocommit_session(ctx.sessionmaker) as session:
        row = (await session.execute(_order_with_webinar(order_id))).first()
    if row is None:
        logger.info("mail skipped: the order no longer exists", extra={"order_id": str(order_id)})
        return
    order, webinar, organizer = row
    outcome = "lost" if order.dispute_lost_at else "won" if order.dispute_won_at else None
    if outcome is None:
        raise PermanentError("the order's dispute is not decided")
    await _send(ctx, lambda: dispute_closed_mail(ctx.settings, order, webinar, organizer, outcome,
                                                 message_key=f"dispute.{order.id}"))
    logger.info("mail sent", extra={"kind": "dispute_closed", "order_id": str(order.id), "outcome": outcome})


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
        orders = {o.id: o for o in await session.scalars(
            select(Order).where(Order.id.in_({t.order_id for t in tickets})))} if tickets else {}
        updated = 0
        buyers: set[uuid.UUID] = set()
        for ticket in tickets:
            if ticket.assigned_at is None:
                # A seat still on the buyer's order page: its link was never mailed and still
                # works. The buyer hears of the new time once for all such seats.
                buyers.add(ticket.order_id)
                continue
            updated += await reissue(session, ticket, webinar, "mail.updated", f"mail.updated:{ticket.id}:{sequence}",
                                     now=now, reason="rescheduled", order=orders.get(ticket.order_id),
                                     sequence=sequence)
        for order_id in sorted(buyers):
            updated += await enqueue(session, "mail.order_updated", {"order_id": str(order_id), "sequence": sequence},
                                     dedupe_key=f"mail.order_updated:{order_id}:{sequence}")
            await enqueue_many(session, order_reminder_jobs(order_id, webinar, now=now))
    logger.info("time change: update mails queued", extra={"webinar_id": str(webinar_id), "count": updated})
