"""Ticket types: the kinds of seat a webinar sells, each with its price, and optionally its own
capacity within the webinar's, sale window, description, place on the page and visibility.

Every webinar has a default type, its `price_amount`. A webinar that sells only that type
without limits of its own is not `typed`: its seats are counted on the webinar alone. Adding
a type, or giving the default one a capacity, window or visibility of its own, makes it
typed for good (`_make_typed`); from then on every seat is also counted on its type
(ticketing.tickets.capacity).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.models import OrderLine, Organizer, Ticket, TicketType, Webinar, WebinarStatus
from ticketing.errors import N_, Conflict, Invalid, NotFound, Text
from ticketing.inputs import has_control, iso_time, whole_number
from ticketing.tickets.capacity import offer_freed_seats
from ticketing.webinars.minimums import describe as describe_amount
from ticketing.webinars.minimums import minimum_charge
from ticketing.webinars.sales import MIN_CHECKOUT_WINDOW, is_on_sale, sales_end
from ticketing.webinars.service import get_own_webinar

FIELDS = ("name", "description", "price_amount", "capacity", "sales_start", "sales_end", "hidden", "position")
# Limits of the default type that only a typed webinar can honour.
_LIMITS = ("capacity", "sales_start", "sales_end", "hidden")
MAX_TYPES = 20


async def types_of(session: AsyncSession, webinar_id: uuid.UUID) -> list[TicketType]:
    """The webinar's types in page order."""
    query = (select(TicketType).where(TicketType.webinar_id == webinar_id)
             .order_by(TicketType.position, TicketType.created_at, TicketType.id))
    return list(await session.scalars(query))


async def default_type(session: AsyncSession, webinar_id: uuid.UUID) -> TicketType:
    kind = await session.scalar(select(TicketType).where(TicketType.webinar_id == webinar_id, TicketType.is_default))
    if kind is None:
        raise NotFound("this webinar has no default ticket type")
    return kind


async def type_names(session: AsyncSession, webinar_id: uuid.UUID) -> dict[uuid.UUID, str]:
    """The names of the webinar's types by id (what attendee lists show for each seat)."""
    rows = await session.execute(select(TicketType.id, TicketType.name).where(TicketType.webinar_id == webinar_id))
    return {type_id: name for type_id, name in rows}


def seats_left(kind: TicketType, webinar: Webinar) -> int | None:
    """Seats of this type a buyer can still take: its own and the webinar's, whichever is fewer."""
    counts = [] if webinar.capacity is None else [webinar.capacity - webinar.seats_taken]
    if webinar.typed and kind.capacity is not None:
        counts.append(kind.capacity - kind.seats_taken)
    return max(min(counts), 0) if counts else None


def type_on_sale(kind: TicketType, webinar: Webinar, at: dt.datetime) -> bool:
    """Whether a seat of this type may be sold at `at`: the webinar is on sale and `at` lies in
    the type's own window (a paid checkout, like the webinar's, needs half an hour before its
    end; `checkout_open` says whether one may start)."""
    return (is_on_sale(webinar, at) and (kind.sales_start is None or at >= kind.sales_start)
            and (kind.sales_end is None or at < kind.sales_end))


def type_sales_end(kind: TicketType, webinar: Webinar) -> dt.datetime:
    end = sales_end(webinar)
    return min(end, kind.sales_end) if kind.sales_end is not None else end


def checkout_open(kind: TicketType, webinar: Webinar, at: dt.datetime, *, revealed: bool = False) -> bool:
    """Whether a checkout for this type may start at `at` (seats aside): on sale, not hidden
    (or `revealed` by a promo code), and for a paid type with the shortest Checkout Session's
    time left before it closes."""
    if (kind.hidden and not revealed) or not type_on_sale(kind, webinar, at):
        return False
    return kind.price_amount == 0 or at < type_sales_end(kind, webinar) - MIN_CHECKOUT_WINDOW


@dataclasses.dataclass(frozen=True)
class Offer:
    """A type as the public page shows it: on sale now or not, and the seats it has left."""

    kind: TicketType
    on_sale: bool
    seats_left: int | None
    upcoming: bool


def offers(kinds: list[TicketType], webinar: Webinar, now: dt.datetime, *,
           revealed: frozenset[str] = frozenset()) -> list[Offer]:
    """The visible types of the webinar for its public page, in page order; hidden ones too
    when their ids are `revealed` (by a promo code)."""
    shown = []
    for kind in kinds:
        unhidden = str(kind.id) in revealed
        if kind.hidden and not unhidden:
            continue
        left = seats_left(kind, webinar)
        shown.append(Offer(kind, checkout_open(kind, webinar, now, revealed=unhidden) and left != 0, left,
                           upcoming=kind.sales_start is not None and now < kind.sales_start))
    return shown


# --- the organizer's side ------------------------------------------------------------------


def when(data: Mapping[str, Any], name: str) -> dt.datetime | None:
    """`data[name]`, an optional ISO 8601 time with offset, in UTC."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid(Text(N_("%(name)s must be an ISO 8601 time with offset, or null"), name=name), field=name)
    return iso_time(value, name).astimezone(dt.UTC)


def _text(data: Mapping[str, Any], name: str, *, limit: int, required: bool) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise Invalid(Text(N_("%(name)s is required as a non-empty string"), name=name) if required
                      else Text(N_("%(name)s must be a string"), name=name), field=name)
    value = value.strip()
    if len(value) > limit:
        raise Invalid(Text(N_("%(name)s must be at most %(limit)d characters"), name=name, limit=limit), field=name)
    if has_control(value, allow_newlines=name == "description"):
        raise Invalid(Text(N_("%(name)s must not contain control characters"), name=name), field=name)
    return value



def _fields(data: Mapping[str, Any], base: Mapping[str, Any] | None) -> dict[str, Any]:
    creating = base is None
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}; a ticket type has {', '.join(FIELDS)}", field=unknown[0])
    fields: dict[str, Any] = dict(base or {})
    if creating or "name" in data:
        fields["name"] = _text(data, "name", limit=200, required=True)
    if creating or "description" in data:
        fields["description"] = _text(data, "description", limit=2000, required=False)
    if creating or "price_amount" in data:
        fields["price_amount"] = whole_number(data, "price_amount", required=True)
    if creating or "capacity" in data:
        fields["capacity"] = whole_number(data, "capacity", required=False)
    for name in ("sales_start", "sales_end"):
        if creating or name in data:
            fields[name] = when(data, name)
    if creating or "hidden" in data:
        hidden = data.get("hidden", False)
        if not isinstance(hidden, bool):
            raise Invalid(Text(N_("hidden must be true or false")), field="hidden")
        fields["hidden"] = hidden
    if creating or "position" in data:
        position = whole_number(data, "position", required=False)
        fields["position"] = 0 if position is None else position
    return fields


def _check(fields: Mapping[str, Any], webinar: Webinar, kind: TicketType | None) -> None:
    price = fields["price_amount"]
    if price < 0:
        raise Invalid(Text(N_("price_amount must not be negative")), field="price_amount")
    if price > 99_999_999:
        raise Invalid(Text(N_("price_amount is larger than Stripe accepts")), field="price_amount")
    minimum = minimum_charge(webinar.currency)
    if 0 < price and minimum is not None and price < minimum:
        raise Invalid(Text(N_("price_amount is below Stripe's minimum charge of %(least)s; use at least that, or 0 for "
                              "a free type"), least=describe_amount(minimum, webinar.currency)), field="price_amount")
    capacity = fields["capacity"]
    if capacity is not None:
        if not 1 <= capacity <= 1_000_000:
            raise Invalid(Text(N_("capacity must be between 1 and 1000000, or null for the webinar's")), field="capacity")
        if webinar.capacity is not None and capacity > webinar.capacity:
            raise Invalid(Text(N_("capacity must not exceed the webinar's capacity of %(num)d"), num=webinar.capacity),
                          field="capacity")
        # Before the webinar is typed, every seat sold is of its default type.
        taken = 0 if kind is None else kind.seats_taken if webinar.typed else webinar.seats_taken
        if capacity < taken:
            raise Invalid(Text(N_("capacity cannot go below the %(num)d seats of this type already sold"), num=taken),
                          field="capacity")
    start, end = fields["sales_start"], fields["sales_end"]
    if end is not None and end > sales_end(webinar):
        raise Invalid(Text(N_("sales_end must not be after the webinar's sales end (or its end)")), field="sales_end")
    if start is not None and start >= sales_end(webinar):
        raise Invalid(Text(N_("sales_start must be before the webinar's sales end")), field="sales_start")
    if start is not None and end is not None and end <= start:
        raise Invalid(Text(N_("sales_end must be after sales_start")), field="sales_end")
    if not 0 <= fields["position"] <= 10_000:
        raise Invalid(Text(N_("position must be between 0 and 10000")), field="position")


async def _own_type(session: AsyncSession, organizer: Organizer, type_id: uuid.UUID) -> tuple[TicketType, Webinar]:
    """The organizer's type with its webinar, both locked (the webinar first, as seat counting
    locks them), and still editable."""
    webinar_id = await session.scalar(select(TicketType.webinar_id).where(TicketType.id == type_id))
    if webinar_id is None:
        raise NotFound("no such ticket type")
    webinar = await get_own_webinar(session, organizer, webinar_id, for_update=True)
    kind = await session.scalar(select(TicketType).where(TicketType.id == type_id).with_for_update())
    if kind is None:
        raise NotFound("no such ticket type")
    _editable(webinar)
    return kind, webinar


def _editable(webinar: Webinar) -> None:
    if webinar.status != WebinarStatus.SCHEDULED:
        raise Conflict(Text(N_("this webinar is %(state)s; its ticket types can no longer change"),
                            state=webinar.status.value))


async def _make_typed(session: AsyncSession, webinar: Webinar) -> None:
    """Count seats per type from now on; the webinar's row is locked by the caller, so its count
    is every seat sold so far, all of them of the default type."""
    if webinar.typed:
        return
    default = await default_type(session, webinar.id)
    default.seats_taken = webinar.seats_taken
    webinar.typed = True


async def list_types(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID) -> tuple[Webinar, list[TicketType]]:
    webinar = await get_own_webinar(session, organizer, webinar_id)
    return webinar, await types_of(session, webinar.id)


async def create_type(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID,
                      data: Mapping[str, Any]) -> tuple[TicketType, Webinar]:
    """Add a type to one of the organizer's webinars; Invalid, Conflict, NotFound or Forbidden."""
    webinar = await get_own_webinar(session, organizer, webinar_id, for_update=True)
    _editable(webinar)
    fields = _fields(data, None)
    _check(fields, webinar, None)
    count = await session.scalar(select(func.count()).select_from(TicketType).where(TicketType.webinar_id == webinar.id))
    if count >= MAX_TYPES:
        raise Conflict(Text(N_("a webinar has at most %(num)d ticket types"), num=MAX_TYPES))
    await _make_typed(session, webinar)
    kind = TicketType(webinar_id=webinar.id, seats_taken=0, is_default=False, **fields)
    session.add(kind)
    await session.flush()
    return kind, webinar


async def update_type(session: AsyncSession, organizer: Organizer, type_id: uuid.UUID,
                      data: Mapping[str, Any]) -> tuple[TicketType, Webinar]:
    """Apply a PATCH to a type. The default type's price is the webinar's `price_amount`."""
    kind, webinar = await _own_type(session, organizer, type_id)
    current = {name: getattr(kind, name) for name in FIELDS}
    fields = _fields(data, current)
    _check(fields, webinar, kind)
    changed = {name: value for name, value in fields.items() if value != current[name]}
    if kind.is_default and any(name in changed for name in _LIMITS):
        await _make_typed(session, webinar)
    for name, value in changed.items():
        setattr(kind, name, value)
    if kind.is_default and "price_amount" in changed:
        webinar.price_amount = kind.price_amount
    await session.flush()
    if "capacity" in changed and _more_seats(current["capacity"], kind.capacity):
        await offer_freed_seats(session, webinar.id)
    return kind, webinar


def _more_seats(before: int | None, after: int | None) -> bool:
    return after is None or (before is not None and after > before)


async def delete_type(session: AsyncSession, organizer: Organizer, type_id: uuid.UUID) -> None:
    """Remove a type nobody bought; Conflict for the default type or one with orders."""
    kind, _ = await _own_type(session, organizer, type_id)
    if kind.is_default:
        raise Conflict(Text(N_("the default ticket type carries the webinar's price and cannot be removed; "
                               "hide it instead")))
    used = await session.scalar(select(
        exists().where(OrderLine.ticket_type_id == kind.id) | exists().where(Ticket.ticket_type_id == kind.id)))
    if used:
        raise Conflict(Text(N_("this ticket type has orders; hide it instead (set hidden to true)")))
    await session.delete(kind)
    await session.flush()
