"""Stored Stripe events whose processing fails: retried by the sweep with capped exponential
backoff counted per event, one stack trace and then short lines, parked after the last try,
and listed and retried by hand with `ticketing events`."""

from __future__ import annotations

import datetime as dt
import logging

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from tests import factories
from ticketing.db import utcnow
from ticketing.db.models import Order, OrderStatus, StripeEvent
from ticketing.payments import retries
from ticketing.payments.reconcile import retry_unprocessed

# Beyond 64 bits: PostgreSQL's BIGINT and SQLite's INTEGER both refuse it, on every try.
UNPAYABLE = 2**63 + 5


async def _event(sessionmaker, event_id: str) -> StripeEvent:
    async with sessionmaker() as session:
        return await session.get(StripeEvent, event_id)


async def _failing_event(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    evt = factories.event("checkout.session.completed", factories.checkout_session(webinar, amount_total=UNPAYABLE))
    response = await factories.post_event(client, evt)
    assert response.status == 200 and (await response.json())["outcome"] == "error"
    return webinar, evt


def test_the_backoff_doubles_from_a_minute_and_stops_at_an_hour():
    delays = [retries.retry_delay(n) for n in range(1, retries.MAX_ATTEMPTS)]
    assert delays[:4] == [dt.timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert max(delays) == retries.MAX_DELAY == delays[-1]
    assert all(a <= b for a, b in zip(delays, delays[1:]))


async def test_a_failing_event_is_retried_with_backoff_then_parked(client, sessionmaker, settings, caplog):
    caplog.set_level(logging.INFO)
    _, evt = await _failing_event(client, sessionmaker)
    stored = await _event(sessionmaker, evt["id"])
    assert stored.attempts == 1 and stored.parked_at is None
    assert dt.timedelta(seconds=50) < stored.next_attempt_at - stored.received_at <= dt.timedelta(seconds=61)

    # A sweep before the backoff is over leaves the event alone.
    await retry_unprocessed(sessionmaker, settings, now=stored.next_attempt_at - dt.timedelta(seconds=5))
    assert (await _event(sessionmaker, evt["id"])).attempts == 1

    now = stored.next_attempt_at
    gaps = []
    for attempt in range(2, retries.MAX_ATTEMPTS + 1):
        await retry_unprocessed(sessionmaker, settings, now=now)
        stored = await _event(sessionmaker, evt["id"])
        assert stored.attempts == attempt and stored.outcome == "error" and stored.processed_at is None
        if stored.parked_at is None:
            gaps.append(stored.next_attempt_at - now)
            now = stored.next_attempt_at
    assert stored.parked_at is not None and stored.next_attempt_at is None
    assert gaps == [dt.timedelta(minutes=m) for m in (2, 4, 8, 16, 32)] + [retries.MAX_DELAY] * (len(gaps) - 5)

    # Parked: no sweep tries it again, however late.
    await retry_unprocessed(sessionmaker, settings, now=now + dt.timedelta(days=10))
    assert (await _event(sessionmaker, evt["id"])).attempts == retries.MAX_ATTEMPTS

    # One stack trace for the event (its first failure); every later try is one short line.
    failures = [r for r in caplog.records if r.name == "ticketing.payments.retries"]
    assert len(failures) == retries.MAX_ATTEMPTS
    assert [bool(r.exc_info) for r in failures] == [True] + [False] * (retries.MAX_ATTEMPTS - 1)
    assert all("\n" not in r.getMessage() for r in failures[1:])
    assert "parked" in failures[-1].getMessage()


async def test_events_list_and_retry_on_the_command_line(client, sessionmaker, cli, backend):
    webinar, evt = await _failing_event(client, sessionmaker)
    fine = factories.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await factories.post_event(client, fine)).status == 200
    async with sessionmaker.begin() as session:
        await session.execute(update(StripeEvent).where(StripeEvent.id == evt["id"]).values(
            attempts=retries.MAX_ATTEMPTS, parked_at=utcnow(), next_attempt_at=None))

    listed = await cli("events", "list", "--failed")
    assert listed.returncode == 0, listed.stderr
    [header, row] = listed.stdout.strip().splitlines()
    assert evt["id"] in row and "parked" in row and f" {retries.MAX_ATTEMPTS} " in row
    assert fine["id"] not in listed.stdout and "cus_1" not in listed.stdout
    everything = await cli("events", "list")
    assert fine["id"] in everything.stdout and evt["id"] in everything.stdout

    # Retried while the cause remains: it fails again, one line, non-zero exit, back on backoff.
    again = await cli("events", "retry", evt["id"])
    assert again.returncode == 1, again.stderr
    [error_line] = [line for line in again.stderr.splitlines() if line.startswith("ticketing: error:")]
    assert "failed again" in error_line and "Traceback" not in again.stderr
    stored = await _event(sessionmaker, evt["id"])
    assert stored.parked_at is None and stored.attempts == 1 and stored.next_attempt_at is not None

    # Once the cause is gone (here: the stored amount corrected), a retry processes it.
    payload = dict(stored.payload)
    payload["data"] = {"object": dict(payload["data"]["object"], amount_total=webinar.price_amount)}
    async with sessionmaker.begin() as session:
        await session.execute(update(StripeEvent).where(StripeEvent.id == evt["id"]).values(payload=payload))
    done = await cli("events", "retry", evt["id"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"event {evt['id']} processed: order_paid"
    async with sessionmaker() as session:
        order = await session.scalar(select(Order).where(Order.webinar_id == webinar.id))
    assert order.status == OrderStatus.PAID
    assert (await cli("events", "list", "--failed")).stdout.strip() == "no failed events"


async def test_events_retry_bad_input_is_one_line(client, sessionmaker, cli):
    fine = factories.event("customer.created", {"id": "cus_1", "object": "customer"})
    assert (await factories.post_event(client, fine)).status == 200
    for args, status, words in [
        (("events", "retry", "evt_nope"), 1, "no stored Stripe event"),
        (("events", "retry", fine["id"]), 1, "processed already"),
        (("events", "retry", ""), 2, "not a Stripe event id"),
        (("events", "retry", "evt 1"), 2, "not a Stripe event id"),
        (("events", "retry"), 2, "required"),
        (("events", "list", "--limit", "0"), 2, "must be"),
    ]:
        result = await cli(*args)
        assert result.returncode == status, (args, result)
        assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr


async def test_failed_events_are_counted_for_prometheus(client, sessionmaker):
    _, evt = await _failing_event(client, sessionmaker)

    async def failed() -> dict[str, float]:
        text = await (await client.get("/metrics")).text()
        return {sample.labels["state"]: sample.value for family in text_string_to_metric_families(text)
                if family.name == "ticketing_stripe_events_failed" for sample in family.samples}

    assert await failed() == {"waiting": 1, "parked": 0}
    async with sessionmaker.begin() as session:
        await session.execute(update(StripeEvent).where(StripeEvent.id == evt["id"]).values(
            attempts=retries.MAX_ATTEMPTS, parked_at=utcnow(), next_attempt_at=None))
    assert await failed() == {"waiting": 0, "parked": 1}
