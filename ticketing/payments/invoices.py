"""Invoices and credit notes Stripe issues for our orders (Checkout's `invoice_creation`).

A completed checkout names its invoice by id; the number and links come with the invoice's own
events (`invoice.finalized`, `invoice.paid`), or from the `payment.invoice` job, which asks
Stripe once for an invoice the order knows only by id, so the webhook never waits on Stripe.
A refund of an invoiced payment leaves Stripe to issue a credit note: for the refunds this
service makes, the `payment.credit_note` job asks Stripe for one linked to the refund; for
those made in the Dashboard, the organizer chooses there. Either way `credit_note.created`
tells the order, which then shows it. Every fact is set once and kept, so events converge in
any order.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.models import Order
from ticketing.inputs import plain
from ticketing.jobs import enqueue
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.orders.service import lock_order, lock_order_by_invoice

logger = logging.getLogger(__name__)

KIND = "payment.invoice"
CREDIT_NOTE_KIND = "payment.credit_note"
INVOICE_TYPES = ("invoice.finalized", "invoice.paid")
CREDIT_NOTE_TYPES = ("credit_note.created",)


def _text(value: Any, limit: int) -> str | None:
    return plain(value).strip()[:limit] or None if isinstance(value, str) else None


def _web_link(value: Any) -> str | None:
    """A link Stripe gave, kept only when it is a web address: buyers and organizers follow it."""
    text = _text(value, 1000)
    return text if text is not None and text.startswith(("https://", "http://")) else None


def record_invoice(order: Order, invoice: Any) -> None:
    """What `invoice` (an id, or the Invoice object) tells about the order's invoice."""
    invoice_id = invoice.get("id") if isinstance(invoice, dict) else invoice
    if not isinstance(invoice_id, str) or not invoice_id or len(invoice_id) > 255:
        return
    if order.invoice_id not in (None, invoice_id):
        logger.warning("order has another invoice already", extra={"order_id": str(order.id)})
        return
    order.invoice_id = invoice_id
    if isinstance(invoice, dict):
        order.invoice_number = order.invoice_number or _text(invoice.get("number"), 100)
        order.invoice_url = order.invoice_url or _web_link(invoice.get("hosted_invoice_url"))
        order.invoice_pdf = order.invoice_pdf or _web_link(invoice.get("invoice_pdf"))


async def fetch_if_needed(session: AsyncSession, order: Order) -> None:
    """Queue the one lookup of an invoice known only by its id (a draft has no number yet)."""
    if order.invoice_id and not order.invoice_number:
        await enqueue(session, KIND, {"order_id": str(order.id), "invoice_id": order.invoice_id},
                      dedupe_key=f"{KIND}:{order.invoice_id}")


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def invoice_event(session: AsyncSession, obj: dict[str, Any]) -> str:
    """`invoice.finalized` / `invoice.paid`: the number and links of an order's invoice. The
    metadata we gave the invoice finds the order even before its checkout event came."""
    invoice_id = obj.get("id")
    if not isinstance(invoice_id, str) or not invoice_id or len(invoice_id) > 255:
        return "malformed"
    metadata = obj.get("metadata")
    order = await lock_order_by_invoice(session, invoice_id)
    if order is None and isinstance(metadata, dict) and (order_id := _uuid(metadata.get("order_id"))) is not None:
        order = await lock_order(session, order_id)
    if order is None:
        return "ignored"  # an invoice of something else sold on the same Stripe account
    record_invoice(order, obj)
    return "invoice_recorded"


async def credit_note_event(session: AsyncSession, obj: dict[str, Any]) -> str:
    """`credit_note.created`: the credit note Stripe issued against an order's invoice."""
    invoice = obj.get("invoice")
    invoice_id = invoice.get("id") if isinstance(invoice, dict) else invoice
    if not isinstance(invoice_id, str) or not invoice_id or len(invoice_id) > 255:
        return "malformed"
    order = await lock_order_by_invoice(session, invoice_id)
    if order is None:
        return "ignored"
    record_credit_note(order, obj)
    return "credit_note_recorded"


def record_credit_note(order: Order, note: dict[str, Any]) -> None:
    """The order's credit note: the first one issued is the one it shows."""
    order.credit_note_number = order.credit_note_number or _text(note.get("number"), 100)
    order.credit_note_pdf = order.credit_note_pdf or _web_link(note.get("pdf"))


@job(KIND, max_attempts=12)
async def fetch_invoice(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Ask Stripe for an invoice the order knows only by id, and keep its number and links."""
    order_id, invoice_id = _uuid(payload.get("order_id")), payload.get("invoice_id")
    if order_id is None or not isinstance(invoice_id, str) or not invoice_id:
        raise PermanentError(f"payload names no order and invoice: {payload!r}")
    if ctx.stripe is None:
        raise PermanentError("no Stripe key configured to look the invoice up with")
    try:
        await _look_up(ctx, order_id, invoice_id)
    except stripe.StripeError as error:
        status = error.http_status
        if status is not None and status < 500 and status not in (409, 429):
            raise PermanentError(f"Stripe refused the invoice lookup ({status})") from error
        raise  # down, slow or busy: the worker tries again later


async def with_invoice(ctx: JobContext, order: Order) -> None:
    """Fill in `order`'s invoice links when only its id is known yet, asking Stripe now: for the
    buyer's mail, which goes out without them when Stripe does not answer (the job asks later)."""
    if not order.invoice_id or order.invoice_url or ctx.stripe is None:
        return
    try:
        invoice = await _look_up(ctx, order.id, order.invoice_id)
    except (stripe.StripeError, PermanentError) as error:
        logger.warning("invoice not known yet for the order mail", extra={"order_id": str(order.id),
                                                                         "error": type(error).__name__})
        return
    record_invoice(order, invoice)


async def _look_up(ctx: JobContext, order_id: uuid.UUID, invoice_id: str) -> dict[str, Any]:
    """The invoice as Stripe has it, its number and links kept on the order."""
    invoice = (await ctx.stripe.v1.invoices.retrieve_async(invoice_id)).to_dict()
    async with ctx.sessionmaker.begin() as session:
        order = await lock_order(session, order_id)
        if order is None:
            raise PermanentError(f"no order {order_id}")
        record_invoice(order, invoice)
    return invoice


async def credit_refund(session: AsyncSession, order: Order, refund_id: str, amount: int, *, test: bool) -> None:
    """After a refund of an invoiced order: queue the credit note Stripe is to issue for it (once
    per refund). A test refund of dev mode gets a stand-in credit note at once."""
    if not order.invoice_id or amount <= 0:
        return
    if test:
        order.credit_note_number = order.credit_note_number or f"{order.invoice_number or order.invoice_id}-C1"
        return
    await enqueue(session, CREDIT_NOTE_KIND, {"order_id": str(order.id), "invoice_id": order.invoice_id,
                                              "refund_id": refund_id, "amount": amount},
                  dedupe_key=f"{CREDIT_NOTE_KIND}:{refund_id}")


@job(CREDIT_NOTE_KIND, max_attempts=12)
async def issue_credit_note(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Ask Stripe for the credit note of one refund against the order's invoice, and keep it."""
    order_id, invoice_id, refund_id = _uuid(payload.get("order_id")), payload.get("invoice_id"), payload.get("refund_id")
    amount = payload.get("amount")
    if (order_id is None or not isinstance(invoice_id, str) or not isinstance(refund_id, str)
            or not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
        raise PermanentError(f"payload names no order, invoice, refund and amount: {payload!r}")
    if ctx.stripe is None:
        raise PermanentError("no Stripe key configured to issue the credit note with")
    params = {"invoice": invoice_id, "amount": amount, "refunds": [{"refund": refund_id, "amount_refunded": amount}],
              "metadata": {"order_id": str(order_id)}}
    try:
        # One key per refund: a retry after Stripe answered gets that same credit note back.
        note = await ctx.stripe.v1.credit_notes.create_async(params, {"idempotency_key": f"credit-note-{refund_id}"})
    except stripe.StripeError as error:
        status = error.http_status
        if status is not None and status < 500 and status not in (409, 429):
            raise PermanentError(f"Stripe refused the credit note ({status})") from error
        raise
    async with ctx.sessionmaker.begin() as session:
        order = await lock_order(session, order_id)
        if order is None:
            raise PermanentError(f"no order {order_id}")
        record_credit_note(order, note.to_dict())
