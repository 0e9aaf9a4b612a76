"""Promo codes: an organizer's discounts, how they price an order, and how their uses are counted.

A use is one order. It is reserved when the checkout starts, becomes used when the order is
paid, and is released when the checkout expires or its payment fails. The counters move only
by conditional UPDATEs, so however many checkouts start at once a code with `max_uses` is
never held or used more often than that.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.models import Order, OrderStatus, Organizer, PromoCode, TicketType, Webinar
from ticketing.errors import Conflict, Forbidden, Invalid, NotFound
from ticketing.inputs import whole_number
from ticketing.orders.ticket_types import when
from ticketing.webinars.service import InvalidFields, get_own_webinar

FIELDS = ("code", "percent_off", "amount_off", "fixed_price", "max_uses", "valid_from", "valid_until",
          "webinar_id", "ticket_type_ids")
DISCOUNTS = ("percent_off", "amount_off", "fixed_price")
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,63}")


def code_key(code: str) -> str:
    return code.strip().lower()


async def _fields(session: AsyncSession, organizer: Organizer, data: Mapping[str, Any],
                  base: Mapping[str, Any] | None) -> dict[str, Any]:
    """The code's fields from `data` (over `base` when changing one); InvalidFields with every
    problem found, the first of them the error's own (what the API answers with)."""
    fields, errors = await _read(session, organizer, data, base)
    if errors:
        raise InvalidFields(errors)
    return fields


async def code_errors(session: AsyncSession, organizer: Organizer, data: Mapping[str, Any],
                      base: PromoCode | None = None) -> dict[str, str]:
    """Every problem of promo code input at once (field → message), as creating it (or, with
    `base`, changing that code) would find them; nothing is stored. Forms report them in one go."""
    current = None if base is None else {name: getattr(base, name) for name in (*FIELDS, "code_key")}
    _, errors = await _read(session, organizer, data, current)
    return errors


async def _read(session: AsyncSession, organizer: Organizer, data: Mapping[str, Any],
                base: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}; a promo code has {', '.join(FIELDS)}", field=unknown[0])
    creating = base is None
    fields: dict[str, Any] = dict(base or {})
    errors: dict[str, str] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, message)

    if creating or "code" in data:
        code = data.get("code")
        if not isinstance(code, str) or not _CODE.fullmatch(code.strip()):
            refuse("code", "code must be 2 to 64 letters, digits, '-' or '_', starting with a letter or digit")
        else:
            fields["code"], fields["code_key"] = code.strip(), code_key(code)
    given = [name for name in DISCOUNTS if data.get(name) is not None]
    discount_read = True
    if creating or any(name in data for name in DISCOUNTS):
        if len(given) != 1:
            refuse("percent_off", "give exactly one of percent_off, amount_off or fixed_price")
            discount_read = False
        else:
            for name in DISCOUNTS:
                try:
                    fields[name] = whole_number(data, name)
                except Invalid as error:
                    refuse(error.field or name, error.message)
                    discount_read = False
    if discount_read:
        if fields["percent_off"] is not None and not 1 <= fields["percent_off"] <= 100:
            refuse("percent_off", "percent_off must be from 1 to 100")
        if fields["amount_off"] is not None and not 1 <= fields["amount_off"] <= 99_999_999:
            refuse("amount_off", "amount_off must be a positive whole number of minor units")
        if fields["fixed_price"] is not None and not 0 <= fields["fixed_price"] <= 99_999_999:
            refuse("fixed_price", "fixed_price must not be negative")
    if creating or "max_uses" in data:
        try:
            fields["max_uses"] = whole_number(data, "max_uses")
        except Invalid as error:
            refuse("max_uses", error.message)
        else:
            if fields["max_uses"] is not None and not 1 <= fields["max_uses"] <= 1_000_000:
                refuse("max_uses", "max_uses must be from 1 to 1000000, or null for no limit")
    for name in ("valid_from", "valid_until"):
        if creating or name in data:
            try:
                fields[name] = when(data, name)
            except Invalid as error:
                refuse(name, error.message)
    if ("valid_from" not in errors and "valid_until" not in errors and fields["valid_from"] and fields["valid_until"]
            and fields["valid_until"] <= fields["valid_from"]):
        refuse("valid_until", "valid_until must be after valid_from")
    webinar_read = True
    if creating or "webinar_id" in data:
        value = data.get("webinar_id")
        if value is None:
            fields["webinar_id"] = None
        else:
            try:
                webinar_id = uuid.UUID(str(value))
            except ValueError:
                refuse("webinar_id", "webinar_id must be a webinar's id, or null for all of yours")
                webinar_read = False
            else:
                # Another organizer's webinar is as unknown as one that does not exist.
                try:
                    fields["webinar_id"] = (await get_own_webinar(session, organizer, webinar_id)).id
                except Forbidden:
                    raise NotFound("no such webinar") from None
    if creating or "ticket_type_ids" in data or "webinar_id" in data:
        ids = data.get("ticket_type_ids", fields.get("ticket_type_ids") or [])
        if ids is None:
            ids = []
        wanted: set[uuid.UUID] | None = None
        if not isinstance(ids, list) or len(ids) > 20:
            refuse("ticket_type_ids", "ticket_type_ids must be a list of at most 20 ticket type ids")
        else:
            try:
                wanted = {uuid.UUID(str(value)) for value in ids}
            except ValueError:
                refuse("ticket_type_ids", "ticket_type_ids must hold ticket type ids")
        if wanted and webinar_read:
            if fields["webinar_id"] is None:
                refuse("ticket_type_ids", "ticket_type_ids need webinar_id: types belong to one webinar")
            else:
                found = set(await session.scalars(select(TicketType.id).where(
                    TicketType.id.in_(wanted), TicketType.webinar_id == fields["webinar_id"])))
                if found != wanted:
                    refuse("ticket_type_ids", "a ticket type in ticket_type_ids is not one of this webinar's")
        if wanted is not None:
            fields["ticket_type_ids"] = sorted(str(value) for value in wanted)
    return fields, errors


async def list_codes(session: AsyncSession, organizer: Organizer) -> list[PromoCode]:
    query = select(PromoCode).where(PromoCode.organizer_id == organizer.id).order_by(PromoCode.created_at, PromoCode.id)
    return list(await session.scalars(query))


async def net_revenue(session: AsyncSession, organizer: Organizer) -> dict[uuid.UUID, dict[str, int]]:
    """What each of the organizer's codes brought, less what was refunded or lost to a chargeback
    since, by currency: the paid orders that used it (its `revenue` counts them as paid, before
    any refund)."""
    rows = await session.execute(
        select(Order.promo_code_id, Order.currency,
               func.sum(func.coalesce(Order.amount_total, 0) - Order.amount_refunded))
        .join(PromoCode, PromoCode.id == Order.promo_code_id)
        # A chargeback lost is money taken back as surely as a refund.
        .where(PromoCode.organizer_id == organizer.id, Order.promo_use == "used", Order.dispute_lost_at.is_(None))
        .group_by(Order.promo_code_id, Order.currency))
    figures: dict[uuid.UUID, dict[str, int]] = {}
    for code_id, currency, amount in rows:
        figures.setdefault(code_id, {})[currency or ""] = int(amount or 0)
    return figures


async def own_code(session: AsyncSession, organizer: Organizer, code_id: uuid.UUID) -> PromoCode:
    """One of the organizer's codes; NotFound for another organizer's, as for none."""
    code = await session.get(PromoCode, code_id)
    if code is None or code.organizer_id != organizer.id:
        raise NotFound("no such promo code")
    return code


async def _own_code(session: AsyncSession, organizer: Organizer, code_id: uuid.UUID) -> PromoCode:
    code = await session.scalar(select(PromoCode).where(PromoCode.id == code_id).with_for_update())
    if code is None or code.organizer_id != organizer.id:
        raise NotFound("no such promo code")
    return code


async def _save(session: AsyncSession, code: PromoCode) -> None:
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(f"you already have the code {code.code!r}", field="code") from None


async def create_code(session: AsyncSession, organizer: Organizer, data: Mapping[str, Any]) -> PromoCode:
    """A new code of the organizer; Invalid, Conflict (the code exists) or NotFound (webinar)."""
    fields = await _fields(session, organizer, data, None)
    code = PromoCode(organizer_id=organizer.id, uses_reserved=0, uses_paid=0, revenue=0, **fields)
    session.add(code)
    await _save(session, code)
    return code


async def update_code(session: AsyncSession, organizer: Organizer, code_id: uuid.UUID,
                      data: Mapping[str, Any]) -> PromoCode:
    code = await _own_code(session, organizer, code_id)
    current = {name: getattr(code, name) for name in (*FIELDS, "code_key")}
    fields = await _fields(session, organizer, data, current)
    if fields["max_uses"] is not None and fields["max_uses"] < code.uses_reserved + code.uses_paid:
        raise Conflict(f"max_uses cannot go below the {code.uses_reserved + code.uses_paid} uses already taken",
                       field="max_uses")
    for name, value in fields.items():
        setattr(code, name, value)
    await _save(session, code)
    return code


async def delete_code(session: AsyncSession, organizer: Organizer, code_id: uuid.UUID) -> None:
    """Remove a code; orders priced with it keep their prices (their link to it is cleared)."""
    code = await _own_code(session, organizer, code_id)
    await session.delete(code)
    await session.flush()


# --- the buyer's side ----------------------------------------------------------------------


async def find_code(session: AsyncSession, webinar: Webinar, text: str, *, now: dt.datetime) -> PromoCode:
    """The organizer's code `text` valid for `webinar` now; NotFound or Conflict saying why not
    (field "code"; `reason` one of "unknown", "not_yet", "expired", "used_up" for the page)."""
    key = code_key(text)
    code = await session.scalar(select(PromoCode).where(PromoCode.organizer_id == webinar.organizer_id,
                                                        PromoCode.code_key == key))
    if code is None or (code.webinar_id is not None and code.webinar_id != webinar.id):
        raise NotFound("this promo code is not known", field="code", reason="unknown")
    if code.valid_from is not None and now < code.valid_from:
        raise Conflict("this promo code is not valid yet", field="code", reason="not_yet")
    if code.valid_until is not None and now >= code.valid_until:
        raise Conflict("this promo code has expired", field="code", reason="expired")
    if code.max_uses is not None and code.uses_reserved + code.uses_paid >= code.max_uses:
        raise Conflict("this promo code has been used up", field="code", reason="used_up")
    return code


def applies_to(code: PromoCode, kind: TicketType) -> bool:
    return not code.ticket_type_ids or str(kind.id) in code.ticket_type_ids


def reveals(code: PromoCode, kind: TicketType) -> bool:
    """Whether the code makes this hidden type buyable: it names the type."""
    return str(kind.id) in code.ticket_type_ids


def unit_price(code: PromoCode | None, kind: TicketType) -> int:
    """A seat of `kind` with the code, never below 0 nor above the type's own price."""
    price = kind.price_amount
    if code is None or not applies_to(code, kind):
        return price
    if code.percent_off is not None:
        # Rounded in the buyer's favour.
        return price - (price * code.percent_off + 99) // 100
    if code.amount_off is not None:
        return max(price - code.amount_off, 0)
    return min(code.fixed_price or 0, price)


async def reserve(session: AsyncSession, code: PromoCode, order: Order) -> None:
    """Hold one use of the code for `order`; Conflict when it was used up meanwhile."""
    query = update(PromoCode).where(PromoCode.id == code.id).values(uses_reserved=PromoCode.uses_reserved + 1)
    if code.max_uses is not None:
        query = query.where(PromoCode.uses_reserved + PromoCode.uses_paid < PromoCode.max_uses)
    result = await session.execute(query.execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise Conflict("this promo code has been used up", field="code", reason="used_up")
    order.promo_code_id, order.promo_use = code.id, "reserved"


async def account(session: AsyncSession, order: Order, status: OrderStatus) -> None:
    """Move the order's use of its code on by its status: used once paid, released when the
    checkout expired or failed, or the payment was refunded at once because it came too late or
    found no seat left (nobody kept what the code priced). Idempotent; the caller holds the
    order's lock (see `settle`)."""
    if order.promo_code_id is None or order.promo_use != "reserved":
        return
    if status == OrderStatus.PENDING:
        return
    if status in (OrderStatus.EXPIRED, OrderStatus.FAILED, OrderStatus.OVERSOLD, OrderStatus.LATE):
        values: dict[str, Any] = {"uses_reserved": PromoCode.uses_reserved - 1}
        order.promo_use = "released"
    else:
        values = {"uses_reserved": PromoCode.uses_reserved - 1, "uses_paid": PromoCode.uses_paid + 1,
                  "revenue": PromoCode.revenue + (order.amount_total or 0)}
        order.promo_use = "used"
    await session.execute(update(PromoCode).where(PromoCode.id == order.promo_code_id).values(**values)
                          .execution_options(synchronize_session=False))
