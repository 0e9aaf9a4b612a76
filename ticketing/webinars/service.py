"""Creating, listing and editing webinars, and the rules a webinar must meet."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import uuid
import zoneinfo
from collections.abc import Mapping
from typing import Any

from babel.numbers import list_currencies
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, Organizer, Ticket, TicketType, WaitlistEntry, Webinar, WebinarStatus
from ticketing.errors import N_, Conflict, Forbidden, Invalid, NotFound, Text
from ticketing.i18n import zone
from ticketing.inputs import has_control, iso_time, whole_number
from ticketing.jobs import enqueue
from ticketing.tickets.capacity import offer_freed_seats
from ticketing.webinars import options as attendance_options
from ticketing.webinars.minimums import describe as describe_amount
from ticketing.webinars.minimums import minimum_charge

ROOM_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{1,62}")
# Codes ISO 4217 keeps for testing, metals and "no currency": nobody pays in these.
_NOT_MONEY = {"XXX", "XTS", "XAU", "XAG", "XPT", "XPD", "XDR", "XSU", "XUA", "XBA", "XBB", "XBC", "XBD"}
CURRENCIES = frozenset(list_currencies()) - _NOT_MONEY
EDITABLE = ("title", "description", "starts_at", "ends_at", "timezone", "price_amount", "currency", "capacity", "room",
            "sales_end", "language", "waitlist", "offer_hours")
EDITABLE = EDITABLE + attendance_options.FIELDS
# The languages a webinar's pages and mails can be in (each has a catalog in ticketing/locale).
LANGUAGES = ("en", "de")
# The name of the one type a webinar starts with (its price); the organizer may rename it.
DEFAULT_TYPE_NAME = "Ticket"
# How long an offer to the waitlist holds its seats unless the organizer says otherwise; a week at most.
DEFAULT_OFFER_HOURS, MAX_OFFER_HOURS = 12, 168


def parse_id(value: str) -> uuid.UUID:
    """A webinar, order or ticket id from a URL; anything else is simply unknown."""
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError):
        raise NotFound("no such item") from None


def _text(data: Mapping[str, Any], name: str, *, limit: int, required: bool) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid(Text(N_("%(name)s is required"), name=name), field=name)
        return None
    if not isinstance(value, str):
        raise Invalid(Text(N_("%(name)s must be a string"), name=name), field=name)
    value = value.strip()
    if required and not value:
        raise Invalid(Text(N_("%(name)s must not be empty"), name=name), field=name)
    if len(value) > limit:
        raise Invalid(Text(N_("%(name)s must be at most %(limit)d characters"), name=name, limit=limit), field=name)
    if has_control(value, allow_newlines=name == "description"):
        raise Invalid(Text(N_("%(name)s must not contain control characters"), name=name), field=name)
    return value


def _when(data: Mapping[str, Any], name: str) -> dt.datetime:
    value = data.get(name)
    if not isinstance(value, str):
        raise Invalid(Text(N_("%(name)s is required as an ISO 8601 time with offset, e.g. 2030-01-31T18:00:00+01:00"),
                           name=name), field=name)
    return iso_time(value, name)


def _language(value: object) -> str:
    if not isinstance(value, str) or value.strip().lower() not in LANGUAGES:
        raise Invalid(f"language must be one of {', '.join(LANGUAGES)}", field="language")
    return value.strip().lower()


def _waitlist(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid("waitlist must be true or false", field="waitlist")
    return value


def _offer_hours(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_OFFER_HOURS:
        raise Invalid(f"offer_hours must be a whole number from 1 to {MAX_OFFER_HOURS}", field="offer_hours")
    return value


def _zone_name(value: dt.datetime) -> str:
    """A fixed offset like "+02:00" for a time given with an offset but no zone name."""
    offset = value.utcoffset() or dt.timedelta(0)
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


class InvalidFields(Invalid):
    """Several fields of a webinar are not acceptable; `errors` has each field's message, the
    first of them is the error's own message (what the API answers with)."""

    def __init__(self, errors: dict[str, str]) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(message, field=field)
        self.errors = errors


def _rules(fields: dict[str, Any], now: dt.datetime):
    """The rules a webinar's fields must meet, each as (the fields it reads, a check that raises
    Invalid), in the order the API reports the first broken one."""

    def when() -> None:
        if fields["ends_at"] <= fields["starts_at"]:
            raise Invalid(Text(N_("ends_at must be after starts_at")), field="ends_at")
        if fields["ends_at"] <= now:
            raise Invalid(Text(N_("ends_at is in the past")), field="ends_at")

    def price() -> None:
        if fields["price_amount"] < 0:
            raise Invalid(Text(N_("price_amount must not be negative")), field="price_amount")
        if fields["price_amount"] > 99_999_999:
            raise Invalid(Text(N_("price_amount is larger than Stripe accepts")), field="price_amount")

    def currency() -> None:
        if fields["currency"].upper() not in CURRENCIES:
            raise Invalid(Text(N_("unknown currency %(code)r; use an ISO 4217 code like EUR"), code=fields["currency"]),
                          field="currency")

    def minimum() -> None:
        least = minimum_charge(fields["currency"])
        if 0 < fields["price_amount"] and least is not None and fields["price_amount"] < least:
            raise Invalid(Text(N_("price_amount is below Stripe's minimum charge of %(least)s; use at least that, or 0 "
                                  "for a free webinar"), least=describe_amount(least, fields["currency"])),
                          field="price_amount")

    def sales_end() -> None:
        if fields.get("sales_end") is not None and fields["sales_end"] > fields["ends_at"]:
            raise Invalid(Text(N_("sales_end must not be after ends_at")), field="sales_end")

    def capacity() -> None:
        if fields["capacity"] is not None and not 1 <= fields["capacity"] <= 1_000_000:
            raise Invalid(Text(N_("capacity must be between 1 and 1000000, or null for no limit")), field="capacity")

    def room() -> None:
        if not ROOM_PATTERN.fullmatch(fields["room"]):
            raise Invalid(Text(N_("room must be 2 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit")),
                          field="room")

    def timezone() -> None:
        try:
            zone(fields["timezone"])
        # OSError: a folder of the zone database ("America") or a name the file system refuses.
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise Invalid(Text(N_("unknown time zone %(zone)r; use an IANA name like Europe/Berlin"), zone=fields["timezone"]),
                          field="timezone") from None

    return [(("starts_at", "ends_at"), when), (("price_amount",), price), (("currency",), currency),
            (("price_amount", "currency"), minimum), (("sales_end", "ends_at"), sales_end), (("capacity",), capacity),
            (("room",), room), (("timezone",), timezone)]


def _check(fields: dict[str, Any], errors: dict[str, str], *, now: dt.datetime) -> None:
    """Apply every rule whose fields could be read; raise InvalidFields with all that failed."""
    for names, rule in _rules(fields, now):
        if any(name in errors or name not in fields for name in names):
            continue
        try:
            rule()
        except Invalid as error:
            errors.setdefault(error.field or names[0], error.message)
    if errors:
        raise InvalidFields(errors)


def _fields(data: Mapping[str, Any], base: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The webinar's fields from `data`, falling back to `base` (the stored webinar) for a PATCH,
    and the message of each field that could not be read (left out of the fields)."""
    creating = base is None
    fields: dict[str, Any] = dict(base or {})
    errors: dict[str, str] = {}

    def read(name: str, parse) -> None:
        try:
            fields[name] = parse()
        except Invalid as error:
            fields.pop(name, None)
            errors.setdefault(error.field or name, error.message)

    def room() -> str:
        value = _text(data, "room", limit=63, required=False)
        return value.lower() if value else "webinar-" + secrets.token_hex(6)

    if creating or "title" in data:
        read("title", lambda: _text(data, "title", limit=200, required=True))
    if creating or "description" in data:
        read("description", lambda: _text(data, "description", limit=20_000, required=False) or "")
    for name in ("starts_at", "ends_at"):
        if creating or name in data:
            read(name, lambda name=name: _when(data, name))
    if creating or "price_amount" in data:
        read("price_amount", lambda: whole_number(data, "price_amount", required=True))
    if creating or "currency" in data:
        read("currency", lambda: _text(data, "currency", limit=3, required=True).lower())
    if creating or "capacity" in data:
        read("capacity", lambda: whole_number(data, "capacity", required=False))
    if creating or "room" in data:
        read("room", room)
    if creating or "sales_end" in data:
        # null (or absent) means sales close when the webinar ends.
        read("sales_end", lambda: _when(data, "sales_end") if data.get("sales_end") is not None else None)
    if "timezone" in data and data["timezone"] is not None:
        read("timezone", lambda: _text(data, "timezone", limit=64, required=True))
    elif creating and "starts_at" in fields:
        fields["timezone"] = _zone_name(fields["starts_at"])
    if creating or "language" in data:
        read("language", lambda: _language(data.get("language", "en")))
    if creating or "waitlist" in data:
        read("waitlist", lambda: _waitlist(data.get("waitlist", True)))
    if creating or "offer_hours" in data:
        read("offer_hours", lambda: _offer_hours(data.get("offer_hours", DEFAULT_OFFER_HOURS)))
    # Kept in UTC from here on (the zone is in `timezone`), so a webinar reads the same
    # straight after this request as when loaded from the database later.
    for name in ("starts_at", "ends_at", "sales_end"):
        if fields.get(name) is not None:
            fields[name] = fields[name].astimezone(dt.UTC)
    for name, parse in attendance_options.parsers(data, creating=creating):
        read(name, parse)
    return fields, errors


def webinar_errors(data: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Every problem of webinar input at once (field → message), as creating it (or, with
    `base`, changing that webinar) would find them; nothing is stored. Forms use it to report
    all their errors in one go."""
    fields, errors = _fields(data, base)
    try:
        _check(fields, errors, now=utcnow())
    except InvalidFields:
        pass
    return errors


def editable_fields(webinar: Webinar) -> dict[str, Any]:
    """What a PATCH starts from: the webinar's editable fields as stored."""
    return {name: getattr(webinar, name) for name in EDITABLE}


async def _room_taken(session: AsyncSession, room: str, other_than: uuid.UUID | None) -> bool:
    query = select(Webinar.id).where(Webinar.room == room, Webinar.status == WebinarStatus.SCHEDULED)
    if other_than is not None:
        query = query.where(Webinar.id != other_than)
    return await session.scalar(query.limit(1)) is not None


async def create_webinar(session: AsyncSession, organizer: Organizer, data: Mapping[str, Any]) -> Webinar:
    """Create a webinar for `organizer` from API input; raises Invalid or Conflict."""
    fields, errors = _fields(data, None)
    _check(fields, errors, now=utcnow())
    if await _room_taken(session, fields["room"], None):
        raise Conflict(Text(N_("room %(room)r is already used by another webinar"), room=fields["room"]), field="room")
    webinar = Webinar(id=uuid.uuid4(), organizer_id=organizer.id, seats_taken=0, status=WebinarStatus.SCHEDULED,
                      sequence=0, typed=False, **fields)
    session.add(webinar)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict(Text(N_("room %(room)r is already used by another webinar"), room=fields["room"]),
                       field="room") from None
    # Its price is its default ticket type; more types make the webinar `typed`.
    session.add(TicketType(webinar_id=webinar.id, name=DEFAULT_TYPE_NAME, description="",
                           price_amount=webinar.price_amount, seats_taken=0, hidden=False, position=0,
                           is_default=True))
    await session.flush()
    return webinar


async def list_webinars(session: AsyncSession, organizer: Organizer) -> list[Webinar]:
    query = select(Webinar).where(Webinar.organizer_id == organizer.id).order_by(Webinar.starts_at, Webinar.id)
    return list(await session.scalars(query))


async def get_webinar(session: AsyncSession, webinar_id: uuid.UUID, *, for_update: bool = False) -> Webinar:
    """Any webinar by id (the public page, checkout, webhooks)."""
    query = select(Webinar).where(Webinar.id == webinar_id)
    if for_update:
        query = query.with_for_update()
    webinar = await session.scalar(query)
    if webinar is None:
        raise NotFound("no such webinar")
    return webinar


async def get_own_webinar(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID, *, for_update: bool = False) -> Webinar:
    """A webinar the organizer owns: NotFound when it does not exist, Forbidden when it is not theirs."""
    webinar = await get_webinar(session, webinar_id, for_update=for_update)
    if webinar.organizer_id != organizer.id:
        raise Forbidden("this webinar belongs to another organizer")
    return webinar


async def update_webinar(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID, data: Mapping[str, Any]) -> Webinar:
    """Apply a PATCH. A change of time raises `sequence` and queues the update mails."""
    webinar = await get_own_webinar(session, organizer, webinar_id, for_update=True)
    if webinar.status != WebinarStatus.SCHEDULED:
        raise Conflict(Text(N_("this webinar is %(state)s and can no longer be edited"), state=webinar.status.value))
    current = editable_fields(webinar)
    fields, errors = _fields({k: v for k, v in data.items() if k in EDITABLE}, current)
    _check(fields, errors, now=utcnow())
    if fields["capacity"] is not None and fields["capacity"] < webinar.seats_taken:
        raise Invalid(Text(N_("capacity cannot go below the %(num)d tickets already sold"), num=webinar.seats_taken),
                      field="capacity")
    await _check_types_fit(session, webinar, fields)
    if fields["room"] != webinar.room and await _room_taken(session, fields["room"], webinar.id):
        raise Conflict(Text(N_("room %(room)r is already used by another webinar"), room=fields["room"]), field="room")
    time_changed = (fields["starts_at"], fields["ends_at"]) != (webinar.starts_at, webinar.ends_at)
    changed = {k: v for k, v in fields.items() if v != current[k]}
    if not changed:
        return webinar
    if time_changed:
        changed["sequence"] = webinar.sequence + 1
    for name, value in changed.items():
        setattr(webinar, name, value)
    if "price_amount" in changed:
        await session.execute(update(TicketType).where(TicketType.webinar_id == webinar.id, TicketType.is_default)
                              .values(price_amount=webinar.price_amount))
    await session.flush()
    if "capacity" in changed and (webinar.capacity is None or current["capacity"] is not None
                                  and webinar.capacity > current["capacity"]):
        await offer_freed_seats(session, webinar.id)
    if time_changed:
        await enqueue(session, "webinar.time_changed", {"webinar_id": str(webinar.id), "sequence": webinar.sequence},
                      dedupe_key=f"webinar.time_changed:{webinar.id}:{webinar.sequence}")
    return webinar


async def _check_types_fit(session: AsyncSession, webinar: Webinar, fields: Mapping[str, Any]) -> None:
    """Refuse a capacity or sales end that a ticket type of the webinar would pass."""
    types = list(await session.scalars(select(TicketType).where(TicketType.webinar_id == webinar.id)))
    capacity, end = fields["capacity"], fields["sales_end"] or fields["ends_at"]
    for kind in types:
        if capacity is not None and kind.capacity is not None and kind.capacity > capacity:
            raise Invalid(Text(N_("capacity cannot go below the %(num)d seats of the ticket type %(type)r"),
                               num=kind.capacity, type=kind.name), field="capacity")
        if kind.sales_end is not None and kind.sales_end > end:
            raise Invalid(Text(N_("sales would close before the ticket type %(type)r stops selling; change that "
                                  "type's sales_end first"), type=kind.name), field="sales_end")


async def list_tickets(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID) -> list[Ticket]:
    """The attendees of one of the organizer's webinars, oldest first."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    query = select(Ticket).where(Ticket.webinar_id == webinar.id).order_by(Ticket.created_at, Ticket.order_id, Ticket.seq)
    return list(await session.scalars(query))


# `?status=problem`: the orders an organizer should look at. Paid, but no ticket as bought
# (a wrong amount or currency, a full webinar, sales closed or the webinar over), or anything
# else the payment path noted a problem for; an open inquiry, a won chargeback whose tickets
# can be given back, a refund made in Stripe's dashboard. The console's "Orders to look at" is this list.
NEEDS_A_LOOK = "problem"
PROBLEM_STATUSES = (OrderStatus.FLAGGED, OrderStatus.OVERSOLD, OrderStatus.LATE)


async def list_orders(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID, *,
                      status: str | None = None, limit: int | None = None) -> list[Order]:
    """The orders of one of the organizer's webinars, newest first (at most `limit`); `status`
    narrows them to one order status (e.g. "flagged": paid, but not the price, so no tickets
    were issued) or to those that need a look ("problem")."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    query = select(Order).where(Order.webinar_id == webinar.id).order_by(Order.created_at.desc(), Order.id)
    if status == NEEDS_A_LOOK:
        # A superset: lifecycle.orders keeps those whose inquiry, won dispute or partial refund
        # still asks something of the organizer.
        query = query.where(Order.status.in_(PROBLEM_STATUSES) | Order.problem.is_not(None)
                            | (Order.inquiry_opened_at.is_not(None) & Order.inquiry_closed_at.is_(None))
                            | (Order.dispute_won_at.is_not(None) & (Order.status == OrderStatus.DISPUTED))
                            | ((Order.amount_refunded > 0) & Order.refunded_at.is_(None)))
    elif status is not None:
        try:
            query = query.where(Order.status == OrderStatus(status))
        except ValueError:
            known = ", ".join([*(s.value for s in OrderStatus), NEEDS_A_LOOK])
            raise Invalid(f"unknown order status {status!r}; one of {known}", field="status") from None
    return list(await session.scalars(query if limit is None else query.limit(limit)))


async def waitlist_waiting(session: AsyncSession, webinar: Webinar) -> bool:
    """True while confirmed people wait on the webinar's own waitlist (not a type's) without an
    offer: seats that come free are theirs, so the public sees the webinar sold out."""
    if not webinar.waitlist:
        return False
    query = select(WaitlistEntry.id).where(WaitlistEntry.webinar_id == webinar.id, WaitlistEntry.ticket_type_id.is_(None),
                                           WaitlistEntry.confirmed_at.is_not(None), WaitlistEntry.outcome.is_(None),
                                           WaitlistEntry.offered_at.is_(None))
    return await session.scalar(query.limit(1)) is not None


async def types_waited_for(session: AsyncSession, webinar: Webinar) -> frozenset[uuid.UUID]:
    """The ticket types whose own waitlist has confirmed people waiting without an offer: their
    freed seats are the waiting people's, so the public sees those types sold out."""
    if not webinar.waitlist:
        return frozenset()
    query = (select(WaitlistEntry.ticket_type_id).distinct()
             .where(WaitlistEntry.webinar_id == webinar.id, WaitlistEntry.ticket_type_id.is_not(None),
                    WaitlistEntry.confirmed_at.is_not(None), WaitlistEntry.outcome.is_(None),
                    WaitlistEntry.offered_at.is_(None)))
    return frozenset(await session.scalars(query))


def seats_left(webinar: Webinar) -> int | None:
    if webinar.capacity is None:
        return None
    return max(webinar.capacity - webinar.seats_taken, 0)
