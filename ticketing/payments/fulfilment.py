"""The fast path of a flash sale: a new, paid checkout of a webinar that is plainly on sale.

One short transaction of SQLAlchemy Core statements, each compiled once per process:

1. the order, `INSERT … SELECT … WHERE NOT EXISTS (an early refund or dispute) ON CONFLICT
   (stripe_session_id) DO UPDATE … WHERE (still our pending order) RETURNING`;
2. the order's page code and keys, its tickets and 3. its jobs, all made by
   `tickets.service.new_seats` and `jobs_for_paid_order` exactly as the ORM path makes them
   (one order mail; the codes travel only in the jobs);
4. the event, `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`;
5. the seats: the conditional UPDATE of the webinar, last, so its row lock is held for one
   round trip before COMMIT instead of through the whole transaction.

On SQLite the same statements run from BEGIN IMMEDIATE to COMMIT in one call on the
driver's thread (`_fulfil_sqlite`, through `db.direct`), so the one writer's lock is never
held across a turn of the event loop.

Whenever a statement finds the case is not plain (the order exists and is not ours to pay,
an early refund waits for it, the webinar changed, is full, is no longer on sale, or counts
its seats per ticket type, the event is stored already), the transaction rolls back and the caller takes the ORM path
(`payments.webhooks`), which handles every case and keeps the same guarantees: nothing of
this attempt is left behind.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import sqlite3
import types
import uuid
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, literal_column, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from ticketing.db import direct, is_unavailable
from ticketing.db.engine import without_transactions
from ticketing.db.models import (
    Job,
    Order,
    OrderStatus,
    StripeEvent,
    Ticket,
    TicketType,
    WaitlistEntry,
    Webinar,
    WebinarStatus,
)
from ticketing.inputs import plain
from ticketing.jobs.queue import job_rows, notify_queued
from ticketing.orders.service import MAX_QUANTITY
from ticketing.payments.versions import is_supported
from ticketing.settings import Settings
from ticketing.tickets.service import jobs_for_paid_order, new_seats

logger = logging.getLogger(__name__)

ORDERS, TICKETS, JOBS, EVENTS, WEBINARS, TYPES = (
    Order.__table__, Ticket.__table__, Job.__table__, StripeEvent.__table__, Webinar.__table__, TicketType.__table__)
OFFERS = WaitlistEntry.__table__


class _NotPlain(Exception):
    """This checkout needs the full path: roll back what this attempt wrote."""


@dataclasses.dataclass(frozen=True)
class _Checkout:
    """What a plain paid checkout tells us, checked before any statement runs."""

    session_id: str
    webinar_id: uuid.UUID
    order_id: uuid.UUID | None  # ours (client_reference_id), or None for a session made elsewhere
    quantity: int
    amount_total: int
    currency: str
    email: str
    name: str | None
    payment_intent: str | None
    livemode: bool | None


@dataclasses.dataclass(frozen=True)
class _Price:
    """What the fast path needs of a webinar; cached per process, checked again by the seat UPDATE."""

    price_amount: int
    currency: str
    starts_at: dt.datetime
    sequence: int
    typed: bool  # never unset once set, so a cached True is safe to act on
    default_type_id: uuid.UUID  # every seat of an untyped webinar is of this type


# --- the statements ----------------------------------------------------------------------


def _on_sale():
    """THE on-sale condition of the fast path, applied by the seat UPDATE alone.

    `webinars.sales.is_on_sale` in SQL: the webinar is scheduled, its end lies ahead of now,
    and the checkout completed (`w_at`, Stripe's event time, never after now) before its
    sales end (`sales_end`, else `ends_at`). Anything else (cancelled, ended, sales closed)
    fails the UPDATE and the checkout goes through `orders.service.settle`, which decides
    what such a payment gets (a late one is refunded).
    """
    at = bindparam("w_at", type_=WEBINARS.c.ends_at.type)
    return and_(WEBINARS.c.status == WebinarStatus.SCHEDULED.value,
                WEBINARS.c.ends_at > bindparam("w_now", type_=WEBINARS.c.ends_at.type),
                WEBINARS.c.ends_at > at,
                func.coalesce(WEBINARS.c.sales_end, WEBINARS.c.ends_at) > at)


def _statements(dialect: str) -> types.SimpleNamespace:
    dml = postgresql if dialect == "postgresql" else sqlite
    order_columns = ["id", "webinar_id", "stripe_session_id", "stripe_payment_intent_id", "email", "buyer_name",
                     "quantity", "expected_amount", "amount_total", "currency", "amount_refunded", "status",
                     "completed_at", "paid_at", "livemode", "created_at", "updated_at"]
    early_charge = exists().where(EVENTS.c.payment_intent_id == bindparam("o_intent", type_=EVENTS.c.payment_intent_id.type),
                                  EVENTS.c.outcome == "unmatched")
    values = select(*[bindparam(f"o_{name}", type_=ORDERS.c[name].type) for name in order_columns]).where(~early_charge)
    order = dml.insert(ORDERS).from_select(order_columns, values)
    new = order.excluded
    order = order.on_conflict_do_update(
        index_elements=["stripe_session_id"],
        set_={
            "stripe_payment_intent_id": new.stripe_payment_intent_id,
            # What the buyer gave on our page stays; Stripe's details fill what is missing.
            "email": func.coalesce(ORDERS.c.email, new.email),
            "buyer_name": func.coalesce(ORDERS.c.buyer_name, new.buyer_name), "amount_total": new.amount_total,
            "currency": new.currency, "status": new.status, "completed_at": new.completed_at,
            "paid_at": new.paid_at, "livemode": new.livemode, "updated_at": new.updated_at,
        },
        # Only our own order for this very session, still waiting for its payment, paid in full;
        # any other existing order is the full path's to judge.
        where=and_(ORDERS.c.id == new.id, ORDERS.c.webinar_id == new.webinar_id,
                   ORDERS.c.status == OrderStatus.PENDING.value, ORDERS.c.paid_at.is_(None),
                   ORDERS.c.completed_at.is_(None), ORDERS.c.expired_at.is_(None),
                   ORDERS.c.payment_failed_at.is_(None), ORDERS.c.refunded_at.is_(None),
                   ORDERS.c.disputed_at.is_(None), ORDERS.c.stripe_payment_intent_id.is_(None),
                   # A promo code's use is counted by the full path's `settle`.
                   ORDERS.c.promo_code_id.is_(None),
                   # An offer's checkout converts seats held for it: `settle` knows how.
                   ~exists().where(OFFERS.c.order_id == ORDERS.c.id),
                   ORDERS.c.expected_amount == new.amount_total),
    ).returning(ORDERS.c.quantity, ORDERS.c.email, ORDERS.c.buyer_name, ORDERS.c.browser_key)
    order_values = (update(ORDERS).where(ORDERS.c.id == bindparam("o_id", type_=ORDERS.c.id.type))
                    .values(code_hash=bindparam("o_code_hash"), page_key=bindparam("o_page_key"),
                            code_sealed=bindparam("o_code_sealed")))
    seats = (
        update(WEBINARS)
        .where(WEBINARS.c.id == bindparam("w_id", type_=WEBINARS.c.id.type),
               # The price, currency and time this process read (and cached) are still the webinar's.
               WEBINARS.c.price_amount == bindparam("w_price"), WEBINARS.c.currency == bindparam("w_currency"),
               WEBINARS.c.sequence == bindparam("w_sequence"),
               # Seats of a typed webinar are counted per type too: the full path's business.
               WEBINARS.c.typed.is_(False),
               _on_sale(),
               WEBINARS.c.capacity.is_(None) | (WEBINARS.c.seats_taken + bindparam("w_count") <= WEBINARS.c.capacity))
        .values(seats_taken=WEBINARS.c.seats_taken + bindparam("w_count"))
        .returning(WEBINARS.c.id)
    )
    return types.SimpleNamespace(
        webinar=select(WEBINARS.c.price_amount, WEBINARS.c.currency, WEBINARS.c.starts_at, WEBINARS.c.sequence,
                       WEBINARS.c.typed, TYPES.c.id)
        .join(TYPES, and_(TYPES.c.webinar_id == WEBINARS.c.id, TYPES.c.is_default))
        .where(WEBINARS.c.id == bindparam("w_id", type_=WEBINARS.c.id.type)),
        order=order,
        order_values=order_values,
        tickets=dml.insert(TICKETS),
        jobs=dml.insert(JOBS).on_conflict_do_nothing(index_elements=["dedupe_key"]),
        event=dml.insert(EVENTS).on_conflict_do_nothing(index_elements=["id"]).returning(literal_column("1")),
        seats=seats,
    )


_STATEMENTS: dict[str, types.SimpleNamespace] = {}
_PRICES: dict[uuid.UUID, _Price] = {}
_PRICES_KEPT = 1000


# --- reading the event -------------------------------------------------------------------


def _id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _uuid(value: Any) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def plain_checkout(event: dict[str, Any], settings: Settings) -> _Checkout | None:
    """The checkout when the event is a paid `checkout.session.completed` the fast path can
    take on its face; None for anything that needs the full path."""
    if event.get("type") != "checkout.session.completed" or event.get("livemode") is not settings.stripe_livemode:
        return None
    if not is_supported(event.get("api_version")):
        return None  # the full path reads it and logs the version once
    obj = event.get("data", {}).get("object")
    if not isinstance(obj, dict) or obj.get("payment_status") != "paid":
        return None
    session_id, metadata = _id(obj.get("id")), obj.get("metadata") or {}
    if session_id is None or len(session_id) > 255 or not isinstance(metadata, dict):
        return None
    webinar_id = _uuid(metadata.get("webinar_id"))
    quantity = metadata.get("quantity", 1)
    amount, currency = obj.get("amount_total"), obj.get("currency")
    details = obj.get("customer_details") or {}
    email = details.get("email") or obj.get("customer_email")
    name = details.get("name")
    if (webinar_id is None or not isinstance(quantity, (str, int)) or isinstance(quantity, bool)
            or not isinstance(amount, int) or isinstance(amount, bool)
            or not isinstance(currency, str) or len(currency) != 3 or not isinstance(email, str)):
        return None
    try:
        quantity = int(quantity)
    except ValueError:
        return None
    email = plain(email).strip()[:320]
    order_ref = metadata.get("order_id") or obj.get("client_reference_id")
    order_id = _uuid(order_ref)
    if not 1 <= quantity <= MAX_QUANTITY or not email or (order_ref and order_id is None):
        return None
    payment_intent = _id(obj.get("payment_intent"))
    return _Checkout(
        session_id=session_id, webinar_id=webinar_id, order_id=order_id, quantity=quantity, amount_total=amount,
        currency=currency.lower(), email=email,
        name=(plain(name).strip()[:200] or None) if isinstance(name, str) else None,
        payment_intent=payment_intent[:255] if payment_intent else None,
        livemode=obj["livemode"] if isinstance(obj.get("livemode"), bool) else None,
    )


# --- the transaction ---------------------------------------------------------------------


async def fulfil_plain_checkout(engine: AsyncEngine, settings: Settings, event: dict[str, Any],
                                event_row: dict[str, Any], *, now: dt.datetime) -> str | None:
    """Fulfil a new paid checkout in one short transaction and store its event; returns the
    outcome ("order_paid"), or None when the checkout needs the full path (nothing written).

    The checkout completed at Stripe's event time (`created`), never later than `now`, as
    `payments.events` takes it: that is the order's `completed_at` and `paid_at`, and what
    the sales end is held against.
    """
    checkout = plain_checkout(event, settings)
    if checkout is None:
        return None
    created = event_row.get("created")
    at = min(created, now) if created is not None else now
    statements = _STATEMENTS.get(engine.dialect.name)
    if statements is None:
        statements = _STATEMENTS[engine.dialect.name] = _statements(engine.dialect.name)
    try:
        if engine.dialect.name == "sqlite":
            await _fulfil_sqlite(engine, statements, checkout, event_row, now=now, at=at)
        else:
            async with engine.begin() as connection:
                await _fulfil(connection, statements, checkout, event_row, now=now, at=at)
    except _NotPlain:
        return None
    except IntegrityError:
        # Our order id is taken by an order without this session: the full path sorts it out.
        return None
    except Exception as error:
        if is_unavailable(error):
            raise
        # A bug here must not cost the event: the full path processes (or keeps) it.
        logger.exception("fast fulfilment failed; taking the full path", extra={"event_id": event_row["id"]})
        return None
    notify_queued()
    return f"order_{OrderStatus.PAID.value}"


async def _price(connection, statements, webinar_id: uuid.UUID) -> _Price:
    price = _PRICES.get(webinar_id)
    if price is None:
        row = (await connection.execute(statements.webinar, {"w_id": webinar_id})).first()
        if row is None:
            raise _NotPlain
        price = _Price(*row)
        if len(_PRICES) >= _PRICES_KEPT:
            _PRICES.clear()
        _PRICES[webinar_id] = price
    return price


def _order_params(checkout: _Checkout, order_id: uuid.UUID, price: _Price, *, now: dt.datetime,
                  at: dt.datetime) -> dict[str, Any]:
    return {
        "o_id": order_id, "o_webinar_id": checkout.webinar_id, "o_stripe_session_id": checkout.session_id,
        "o_stripe_payment_intent_id": checkout.payment_intent, "o_intent": checkout.payment_intent,
        "o_email": checkout.email, "o_buyer_name": checkout.name, "o_quantity": checkout.quantity,
        "o_expected_amount": price.price_amount * checkout.quantity, "o_amount_total": checkout.amount_total,
        "o_currency": checkout.currency, "o_amount_refunded": 0, "o_status": OrderStatus.PAID,
        "o_completed_at": at, "o_paid_at": at, "o_livemode": checkout.livemode, "o_created_at": now,
        "o_updated_at": now,
    }


def _issued(order_id: uuid.UUID, row, checkout: _Checkout, price: _Price, *,
            now: dt.datetime) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The order's new values, ticket rows and job rows for the order row the upsert returned:
    the same seats, order values and jobs the ORM path (`tickets.service.issue_tickets`) makes."""
    quantity, email, buyer_name, browser_key = row
    order = types.SimpleNamespace(id=order_id, quantity=quantity, email=email, buyer_name=buyer_name,
                                  browser_key=browser_key)
    webinar = types.SimpleNamespace(id=checkout.webinar_id, starts_at=price.starts_at, sequence=price.sequence)
    seats = new_seats(order, webinar, [price.default_type_id] * quantity, now=now)
    values = {"code_hash": None, "page_key": None, "code_sealed": None, **seats.order_values}
    order_values = {"o_id": order_id, **{f"o_{k}": v for k, v in values.items()}}
    return order_values, seats.tickets, job_rows(jobs_for_paid_order(order, webinar, seats, now=now), now)


def _seat_params(checkout: _Checkout, price: _Price, quantity: int, *, now: dt.datetime,
                 at: dt.datetime) -> dict[str, Any]:
    return {"w_id": checkout.webinar_id, "w_price": price.price_amount, "w_currency": price.currency,
            "w_sequence": price.sequence, "w_now": now, "w_at": at, "w_count": quantity}


def _stored_event(event_row: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    return dict(event_row, outcome=f"order_{OrderStatus.PAID.value}", processed_at=now)


async def _fulfil(connection, statements, checkout: _Checkout, event_row: dict[str, Any], *,
                 now: dt.datetime, at: dt.datetime) -> None:
    price = await _price(connection, statements, checkout.webinar_id)
    if (price.typed or checkout.currency != price.currency
            or checkout.amount_total != price.price_amount * checkout.quantity):
        raise _NotPlain  # typed, or flagged by the full path

    order_id = checkout.order_id or uuid.uuid4()
    row = (await connection.execute(statements.order, _order_params(checkout, order_id, price, now=now, at=at))).first()
    if row is None:
        raise _NotPlain  # an order for this session exists, or a refund or dispute came first
    order_values, tickets, jobs = _issued(order_id, row, checkout, price, now=now)
    await connection.execute(statements.order_values, order_values)
    await connection.execute(statements.tickets, tickets)
    await connection.execute(statements.jobs, jobs)

    stored = (await connection.execute(statements.event, _stored_event(event_row, now))).first()
    if stored is None:
        raise _NotPlain  # a redelivery: the full path answers it as the duplicate it is

    # Last: the webinar row is locked from here to COMMIT, one round trip.
    taken = (await connection.execute(statements.seats, _seat_params(checkout, price, row[0], now=now, at=at))).first()
    if taken is None:
        # Full, no longer on sale, or changed since this process read it: the full path decides.
        _PRICES.pop(checkout.webinar_id, None)
        raise _NotPlain


# --- SQLite: the whole transaction in one call on the driver's thread --------------------


_DIRECT: dict[tuple[str, tuple[str, ...] | None], direct.Compiled] = {}


def _direct(statements: types.SimpleNamespace, name: str, dialect,
            columns: tuple[str, ...] | None = None) -> direct.Compiled:
    found = _DIRECT.get((name, columns))
    if found is None:
        found = _DIRECT[(name, columns)] = direct.compile_for(getattr(statements, name), dialect, columns)
    return found


_ROLLED_BACK, _SEATS_REFUSED = "rolled back", "seats refused"


def _sqlite_transaction(db: sqlite3.Connection, statements: types.SimpleNamespace, dialect, checkout: _Checkout,
                        order_id: uuid.UUID, price: _Price, event_row: dict[str, Any], *, now: dt.datetime,
                        at: dt.datetime) -> str:
    """The fast path's transaction on the driver's own thread; COMMIT, or ROLLBACK and why."""

    def one(name: str, values: dict[str, Any], *, columns: bool = False):
        statement = _direct(statements, name, dialect, tuple(values) if columns else None)
        return db.execute(statement.sql, statement.params(values)).fetchall()

    def each(name: str, rows: list[dict[str, Any]]) -> None:
        statement = _direct(statements, name, dialect, tuple(rows[0]))
        db.executemany(statement.sql, [statement.params(row) for row in rows])

    db.execute("BEGIN IMMEDIATE")
    try:
        returned = one("order", _order_params(checkout, order_id, price, now=now, at=at))
        if not returned:
            return _ROLLED_BACK  # an order for this session exists, or a refund or dispute came first
        order_values, tickets, jobs = _issued(order_id, tuple(returned[0]), checkout, price, now=now)
        one("order_values", {**order_values, "updated_at": now})
        each("tickets", tickets)
        each("jobs", jobs)
        if not one("event", _stored_event(event_row, now), columns=True):
            return _ROLLED_BACK  # a redelivery: the full path answers it as the duplicate it is
        if not one("seats", {**_seat_params(checkout, price, returned[0][0], now=now, at=at), "updated_at": now}):
            return _SEATS_REFUSED
        db.execute("COMMIT")
        return f"order_{OrderStatus.PAID.value}"
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


async def _fulfil_sqlite(engine: AsyncEngine, statements: types.SimpleNamespace, checkout: _Checkout,
                         event_row: dict[str, Any], *, now: dt.datetime, at: dt.datetime) -> None:
    price = _PRICES.get(checkout.webinar_id)
    if price is None:
        # Read outside any transaction (WAL readers do not wait for the writer), once per webinar.
        async with without_transactions(engine).connect() as connection:
            price = await _price(connection, statements, checkout.webinar_id)
    if (price.typed or checkout.currency != price.currency
            or checkout.amount_total != price.price_amount * checkout.quantity):
        raise _NotPlain  # typed, or flagged by the full path
    order_id = checkout.order_id or uuid.uuid4()
    async with direct.connect(engine) as connection:
        outcome = await direct.run(connection, _sqlite_transaction, statements, engine.dialect, checkout, order_id,
                                   price, event_row, now=now, at=at)
    if outcome == _SEATS_REFUSED:
        # Full, no longer on sale, or changed since this process read it: the full path decides.
        _PRICES.pop(checkout.webinar_id, None)
    if outcome in (_ROLLED_BACK, _SEATS_REFUSED):
        raise _NotPlain
