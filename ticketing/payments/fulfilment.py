"""The fast path of a flash sale: a new, paid checkout of a webinar that is plainly on sale.

What it writes, in SQLAlchemy Core statements compiled once per process:

1. the order, `INSERT … SELECT … WHERE NOT EXISTS (an early refund or dispute) ON CONFLICT
   (stripe_session_id) DO UPDATE … WHERE (still our pending order) RETURNING`;
2. the order's page code and keys, its tickets and 3. its jobs, all made by
   `tickets.service.new_seats` and `jobs_for_paid_order` exactly as the ORM path makes them
   (one order mail; the codes travel only in the jobs);
4. the event, `INSERT … ON CONFLICT (id) DO NOTHING RETURNING id`;
5. the seats: the conditional UPDATE of the webinar, last, so its row lock is held for one
   round trip before COMMIT instead of through the whole transaction.

On SQLite these statements run from BEGIN IMMEDIATE to COMMIT in one call on the driver's
thread (`_fulfil_sqlite`, through `db.direct`), so the one writer's lock is never held across
a turn of the event loop. On PostgreSQL 2. to 5. are one statement of data-modifying CTEs
after the upsert, in a transaction (`_rest`); and a checkout with no order of ours waiting
for it is all of 1. to 5. in one statement without a transaction (`_alone`), which holds the
webinar row for that statement only. Both notify the workers of other processes.

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

from sqlalchemy import and_, bindparam, exists, func, literal_column, select, union_all, update
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
from ticketing.jobs.queue import CHANNEL, job_rows, notify_queued
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
                   # An offer's checkout converts seats held for it: `settle` knows how. So may
                   # an earlier checkout of the offer, which the entry no longer names.
                   ORDERS.c.waitlist_entry_id.is_(None), ~exists().where(OFFERS.c.order_id == ORDERS.c.id),
                   ~exists().where(OFFERS.c.webinar_id == ORDERS.c.webinar_id, OFFERS.c.held.is_(True),
                                   OFFERS.c.email_key == func.lower(ORDERS.c.email)),
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
        rest={},  # PostgreSQL: `_rest` by shape
        alone={},  # PostgreSQL: `_alone` by shape
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


def _columns(table, row: dict[str, Any]) -> list[str]:
    """The columns a row writes: its own keys plus those with a plain default value (a
    statement inside a CTE gets no Python-side defaults from SQLAlchemy)."""
    missing = [c for c in table.c if c.name not in row and c.default is not None]
    if any(not c.default.is_scalar for c in missing):
        raise ValueError(f"{table.name}: a computed default would be left out")
    return list(row) + [c.name for c in missing]


def _rows(table, prefix: str, columns: list[str], count: int) -> list[dict[str, Any]]:
    return [{name: bindparam(f"{prefix}{n}_{name}", type_=table.c[name].type) for name in columns}
            for n in range(count)]


def _rest(statements: types.SimpleNamespace, shape: tuple, dialect) -> direct.Compiled:
    """PostgreSQL: everything after the order upsert as one statement of data-modifying CTEs
    (the order's code and keys, its tickets, its jobs, the event, and the seats), built once
    and compiled once per shape (columns and counts of tickets and jobs): SQLAlchemy does not
    cache a multi-row INSERT and compiled this one for every webhook. One round trip instead
    of five: a webhook's CPU went mostly to the socket writes of its round trips.

    The seat UPDATE runs only when the event was new; the row tells whether the event was
    stored and whether the seats were taken, and the caller rolls back unless both."""
    found = statements.rest.get(shape)
    if found is not None:
        return found
    ticket_columns, tickets, event_columns, _, job_columns, jobs = shape
    order_values = (update(ORDERS).where(ORDERS.c.id == bindparam("o_id", type_=ORDERS.c.id.type))
                    .values(code_hash=bindparam("o_code_hash"), page_key=bindparam("o_page_key"),
                            code_sealed=bindparam("o_code_sealed"),
                            updated_at=bindparam("o_updated_at", type_=ORDERS.c.updated_at.type))
                    .cte("order_values"))
    ctes = [order_values, postgresql.insert(TICKETS).values(_rows(TICKETS, "t", list(ticket_columns), tickets))
            .cte("new_tickets")]
    if jobs:
        ctes.append(postgresql.insert(JOBS).values(_rows(JOBS, "j", list(job_columns), jobs))
                    .on_conflict_do_nothing(index_elements=["dedupe_key"]).cte("new_jobs"))
    stored = (postgresql.insert(EVENTS).values(_rows(EVENTS, "e", list(event_columns), 1)[0])
              .on_conflict_do_nothing(index_elements=["id"]).returning(EVENTS.c.id).cte("stored"))
    taken = (statements.seats.values(updated_at=bindparam("w_updated_at", type_=WEBINARS.c.updated_at.type))
             .where(exists(select(stored.c.id))).cte("taken"))
    statement = select(exists(select(stored.c.id)), exists(select(taken.c.id)), _notify(taken)).add_cte(*ctes)
    found = statements.rest[shape] = direct.compile_for(statement, dialect)
    return found


def _notify(taken):
    """Wake the workers of other processes (at commit) when the jobs were queued."""
    return select(func.pg_notify(CHANNEL, "")).where(exists(select(taken.c.id))).scalar_subquery()


def _guarded_insert(table, prefix: str, columns: list[str], count: int, taken):
    """INSERT of `count` rows of bound values, each only when the seats were `taken`."""
    rows = [select(*row.values()).where(exists(select(taken.c.id))) for row in _rows(table, prefix, columns, count)]
    return postgresql.insert(table).from_select(columns, rows[0] if count == 1 else union_all(*rows),
                                                include_defaults=False)


def _alone(statements: types.SimpleNamespace, shape: tuple, dialect) -> direct.Compiled:
    """PostgreSQL, a checkout with no order of ours waiting for it (a session made elsewhere):
    the whole purchase as one statement that commits on its own, compiled once per shape.

    The seat UPDATE comes first and everything else is written only when it took the seats;
    it takes them only when no order has this session, the event is not stored, and no early
    refund or dispute waits for the payment (as the transaction's upsert checks). A delivery
    racing this one in another process ends in a unique violation, which undoes the whole
    statement. The webinar row is locked for the statement only: in a transaction it stayed
    locked until the process, busy with other requests, came round to send COMMIT, and under
    a flash sale every other purchase waited for that."""
    found = statements.alone.get(shape)
    if found is not None:
        return found
    order_columns, _, ticket_columns, tickets, event_columns, _, job_columns, jobs = shape
    early_charge = exists().where(EVENTS.c.payment_intent_id == bindparam("x_intent", type_=EVENTS.c.payment_intent_id.type),
                                  EVENTS.c.outcome == "unmatched")
    taken = (statements.seats.values(updated_at=bindparam("w_updated_at", type_=WEBINARS.c.updated_at.type))
             .where(~exists().where(ORDERS.c.stripe_session_id == bindparam("x_session", type_=ORDERS.c.stripe_session_id.type)),
                    ~exists().where(EVENTS.c.id == bindparam("x_event", type_=EVENTS.c.id.type)),
                    ~early_charge)
             .cte("taken"))
    ctes = [_guarded_insert(ORDERS, "o", list(order_columns), 1, taken).cte("new_order"),
            _guarded_insert(TICKETS, "t", list(ticket_columns), tickets, taken).cte("new_tickets"),
            _guarded_insert(EVENTS, "e", list(event_columns), 1, taken).cte("stored")]
    if jobs:
        ctes.append(_guarded_insert(JOBS, "j", list(job_columns), jobs, taken)
                    .on_conflict_do_nothing(index_elements=["dedupe_key"]).cte("new_jobs"))
    statement = select(exists(select(taken.c.id)), _notify(taken)).add_cte(*ctes)
    found = statements.alone[shape] = direct.compile_for(statement, dialect)
    return found


def _rows_params(groups) -> tuple[tuple, dict[str, Any]]:
    """The columns of each group of rows (prefix, table, rows) and the parameters naming them."""
    shape, params = [], {}
    for prefix, table, rows in groups:
        columns = _columns(table, rows[0]) if rows else []
        for n, row in enumerate(rows):
            for name in columns:
                params[f"{prefix}{n}_{name}"] = row[name] if name in row else table.c[name].default.arg
        shape.append(tuple(columns))
        shape.append(len(rows))
    return tuple(shape), params


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
    # An invoice to record (and perhaps look up), or Stripe Tax's part, is the full path's business.
    if not isinstance(obj, dict) or obj.get("payment_status") != "paid" or obj.get("invoice"):
        return None
    if isinstance(obj.get("total_details"), dict) and obj["total_details"].get("amount_tax"):
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
        elif checkout.order_id is None:
            await _fulfil_alone(engine, statements, checkout, event_row, now=now, at=at)
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
    shape, params = _rows_params((("t", TICKETS, tickets), ("e", EVENTS, [_stored_event(event_row, now)]),
                                  ("j", JOBS, jobs)))
    params.update(order_values, o_updated_at=now, w_updated_at=now,
                  **_seat_params(checkout, price, row[0], now=now, at=at))
    # The seats last: the webinar row is locked from this statement to COMMIT, one round trip.
    rest = _rest(statements, shape, connection.dialect)
    stored, taken, _ = (await connection.exec_driver_sql(rest.sql, rest.params(params))).one()
    if not stored:
        raise _NotPlain  # a redelivery: the full path answers it as the duplicate it is
    if not taken:
        # Full, no longer on sale, or changed since this process read it: the full path decides.
        _PRICES.pop(checkout.webinar_id, None)
        raise _NotPlain


async def _fulfil_alone(engine: AsyncEngine, statements: types.SimpleNamespace, checkout: _Checkout,
                        event_row: dict[str, Any], *, now: dt.datetime, at: dt.datetime) -> None:
    async with without_transactions(engine).connect() as connection:
        price = await _price(connection, statements, checkout.webinar_id)
        if (price.typed or checkout.currency != price.currency
                or checkout.amount_total != price.price_amount * checkout.quantity):
            raise _NotPlain  # typed, or flagged by the full path
        order_id = uuid.uuid4()
        # What the upsert returns for a new order: the checkout's own values, no browser key.
        order_values, tickets, jobs = _issued(order_id, (checkout.quantity, checkout.email, checkout.name, None),
                                              checkout, price, now=now)
        order = {name[2:]: value for name, value in _order_params(checkout, order_id, price, now=now, at=at).items()
                 if name != "o_intent"}
        order.update({name[2:]: value for name, value in order_values.items()})
        shape, params = _rows_params((("o", ORDERS, [order]), ("t", TICKETS, tickets),
                                      ("e", EVENTS, [_stored_event(event_row, now)]), ("j", JOBS, jobs)))
        params.update(_seat_params(checkout, price, checkout.quantity, now=now, at=at), w_updated_at=now,
                      x_session=checkout.session_id, x_event=event_row["id"], x_intent=checkout.payment_intent)
        alone = _alone(statements, shape, connection.dialect)
        taken = (await connection.exec_driver_sql(alone.sql, alone.params(params))).scalar()
    if not taken:
        # Full, no longer on sale, changed since this process read it, or not new: the full
        # path decides (and the webinar is read again next time).
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
