"""A verified Stripe event holding values the database refuses (a NUL byte, a lone UTF-16
surrogate, a string longer than its column, an integer out of range) is stored, cleaned, with
its error and answered 200, never 503: Stripe would retry it for three days and give up."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import insert, select, text

from tests import factories
from ticketing.db import create_engine, create_sessionmaker, is_unavailable, utcnow
from ticketing.db.models import Order, OrderStatus, StripeEvent, Ticket
from ticketing.payments.reconcile import retry_unprocessed
from ticketing.settings import Settings


def _with_name(name: str):
    return lambda w: factories.checkout_session(w, customer_details={"email": "bea@example.com", "name": name})


# Values a buyer controls (their name) or Stripe passes on; each is refused by one database.
CLEANABLE = {
    "nul_in_name": _with_name("Bea\x00 Buyer"),
    "lone_surrogate_in_name": _with_name("Bea \ud800Buyer"),
    "nul_and_surrogate_in_metadata": lambda w: factories.checkout_session(
        w, metadata={"webinar_id": str(w.id), "quantity": "1", "note\x00": "x\udc00y"}),
}
# Values that cannot be made right by cleaning: the event is kept, with the error, for a person.
UNPROCESSABLE = {
    "session_id_longer_than_its_column": lambda w: factories.checkout_session(w, session_id="cs_test_" + "x" * 400),
    "amount_out_of_64_bit_range": lambda w: factories.checkout_session(w, amount_total=2**63 + 5),
}


def _has_unstorable(value) -> bool:
    return any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in json.dumps(value, ensure_ascii=False))


async def _stored(sessionmaker, event_id: str) -> StripeEvent | None:
    async with sessionmaker() as session:
        return await session.get(StripeEvent, event_id)


@pytest.mark.parametrize("case", sorted(CLEANABLE))
async def test_a_purchase_with_unstorable_text_is_kept_and_fulfilled(client, sessionmaker, settings, case):
    webinar = await factories.webinar(sessionmaker)
    evt = factories.event("checkout.session.completed", CLEANABLE[case](webinar))
    response = await factories.post_event(client, evt)
    assert response.status == 200, await response.text()

    stored = await _stored(sessionmaker, evt["id"])
    assert stored is not None
    # Processed at once, or kept cleaned with its error and fulfilled from that copy by the sweep.
    if stored.processed_at is None:
        assert stored.outcome == "error" and stored.error and stored.attempts == 1
        assert not _has_unstorable(stored.payload) and not _has_unstorable(stored.error)
        await retry_unprocessed(sessionmaker, settings, now=utcnow() + dt.timedelta(minutes=2))
    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.stripe_session_id == evt["data"]["object"]["id"]))
        tickets = list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))
    assert order.status == OrderStatus.PAID and len(tickets) == 1
    assert "\x00" not in (order.buyer_name or "") and not _has_unstorable(order.buyer_name or "")

    # Stripe's redelivery changes nothing.
    again = await factories.post_event(client, evt)
    assert again.status == 200
    async with sessionmaker() as session:
        assert len(list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))) == 1


@pytest.mark.parametrize("case", sorted(UNPROCESSABLE))
async def test_an_event_the_database_refuses_is_stored_with_its_error(client, sessionmaker, backend, case):
    webinar = await factories.webinar(sessionmaker)
    evt = factories.event("checkout.session.completed", UNPROCESSABLE[case](webinar))
    response = await factories.post_event(client, evt)
    assert response.status == 200, await response.text()
    if backend == "sqlite" and case == "session_id_longer_than_its_column":
        # SQLite keeps strings of any length: nothing is refused, the purchase goes through.
        assert (await response.json())["outcome"] == "order_paid"
        return
    assert (await response.json())["outcome"] == "error"

    stored = await _stored(sessionmaker, evt["id"])
    assert stored is not None and stored.processed_at is None
    assert stored.outcome == "error" and stored.attempts == 1 and stored.next_attempt_at is not None
    assert stored.payload["data"]["object"]["id"] == evt["data"]["object"]["id"]
    assert stored.checkout_session_id is None or len(stored.checkout_session_id) <= 255
    async with sessionmaker() as session:
        assert await session.scalar(select(Order).where(Order.webinar_id == webinar.id)) is None


async def test_an_event_whose_own_fields_are_unstorable_is_stored_cleaned(client, sessionmaker):
    evt = factories.event("customer.created", {"id": "cus_\x00\ud800", "object": "customer", "name": "x" * 10_000})
    evt["id"] = "evt_" + "a" * 300 + "\x00"
    evt["type"] = "customer.created" + "\udfff"
    response = await factories.post_event(client, evt)
    assert response.status == 200, await response.text()
    async with sessionmaker() as session:
        [stored] = list(await session.scalars(select(StripeEvent)))
    assert stored.id == ("evt_" + "a" * 300)[:255]
    assert not _has_unstorable(stored.payload) and stored.payload["data"]["object"]["name"] == "x" * 10_000


# --- what counts as an outage, against the real drivers ------------------------------------------


async def _driver_error(sessionmaker, statement, values=None) -> BaseException:
    try:
        async with sessionmaker.begin() as session:
            await session.execute(statement, values)
    except Exception as error:  # noqa: BLE001 - the error itself is what the test looks at
        return error
    raise AssertionError(f"{statement} did not fail")


def _row(**values):
    return {"id": "evt_x", "type": "t", "livemode": False, "payload": {}, "received_at": utcnow(), **values}


# What each database refuses: PostgreSQL checks lengths, NUL bytes and integer ranges on the
# server, asyncpg refuses lone surrogates and out-of-range integers before sending; SQLite
# refuses only text it cannot encode and integers beyond 64 bits.
REFUSED = {
    "postgres": [
        (insert(StripeEvent), _row(type="t" * 101)),
        (insert(StripeEvent), _row(type="bad\x00")),
        (insert(StripeEvent), _row(type="bad\ud800")),
        (insert(StripeEvent), _row(attempts=2**40)),
        (text("SELECT CAST(2147483647 AS integer) + 1"), None),
        (text("SELECT * FROM no_such_table"), None),
    ],
    "sqlite": [
        (insert(StripeEvent), _row(type="bad\ud800")),
        (insert(StripeEvent), _row(attempts=2**64)),
        (text("SELECT * FROM no_such_table"), None),
    ],
}


async def test_data_errors_are_not_outages(sessionmaker, backend):
    errors = [await _driver_error(sessionmaker, statement, values) for statement, values in REFUSED[backend]]
    assert [repr(e)[:200] for e in errors if is_unavailable(e)] == []


async def test_a_lost_connection_is_an_outage(postgres_proxy):
    proxy, proxied_url = postgres_proxy
    engine = create_engine(proxied_url, pool_timeout=2)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
        await proxy.stop()
        error = await _driver_error(sessionmaker, text("SELECT 1"))
        assert is_unavailable(error), repr(error)
    finally:
        await engine.dispose()


async def test_an_event_that_cannot_be_stored_at_all_is_answered_503(postgres_proxy, var_dir, start_client):
    proxy, proxied_url = postgres_proxy
    settings = Settings.from_env({"TICKETING_DATABASE_URL": proxied_url, "TICKETING_VAR_DIR": str(var_dir)},
                                 dotenv=None)
    client = await start_client(settings)
    await proxy.stop()
    evt = factories.event("customer.created", {"id": "cus_1", "object": "customer", "name": "\x00"})
    response = await factories.post_event(client, evt)
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "unavailable"
