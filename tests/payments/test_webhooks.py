"""POST /webhooks/stripe with real signed events: verification, storing, and what each event
type does to orders and tickets, however often and in whatever order Stripe delivers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
import uuid

import pytest
from sqlalchemy import func, select

from tests import factories
from ticketing.db import create_engine, create_sessionmaker
from ticketing.db.models import Job, Order, OrderStatus, StripeEvent, Ticket, TicketStatus, Webinar
from ticketing.payments import versions
from ticketing.settings import Settings

EVENT_TYPES_THAT_CHANGE_NOTHING = ("customer.created", "payment_intent.succeeded")


async def _counts(sessionmaker) -> dict[str, int]:
    async with sessionmaker() as session:
        return {model.__tablename__: await session.scalar(select(func.count()).select_from(model))
                for model in (StripeEvent, Order, Ticket, Job)}


async def _order(sessionmaker, session_id: str) -> Order | None:
    async with sessionmaker() as session:
        return await session.scalar(select(Order).where(Order.stripe_session_id == session_id))


async def _tickets(sessionmaker, order_id) -> list[Ticket]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Ticket).where(Ticket.order_id == order_id).order_by(Ticket.seq)))


async def _jobs(sessionmaker, kind: str) -> list[Job]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Job).where(Job.kind == kind)))


async def _seats_taken(sessionmaker, webinar_id) -> int:
    async with sessionmaker() as session:
        return (await session.get(Webinar, webinar_id)).seats_taken


def _completed(webinar, **kwargs):
    return factories.event("checkout.session.completed", factories.checkout_session(webinar, **kwargs))


# --- fulfilment ------------------------------------------------------------------------------


async def test_paid_checkout_issues_quantity_tickets_and_queues_their_mails(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    evt = _completed(webinar, quantity=3, email="bea@example.com")
    response = await factories.post_event(client, evt)
    assert response.status == 200, await response.text()
    assert await response.json() == {"received": True, "outcome": "order_paid"}

    order = await _order(sessionmaker, evt["data"]["object"]["id"])
    assert order.status == OrderStatus.PAID and order.quantity == 3 and order.email == "bea@example.com"
    tickets = await _tickets(sessionmaker, order.id)
    assert [t.seq for t in tickets] == [0, 1, 2]
    assert all(t.status == TicketStatus.VALID and t.email == "bea@example.com" for t in tickets)
    assert len({t.code_hash for t in tickets}) == 3
    # One mail to the buyer for the whole order; the seats wait on the order page it links.
    [mail] = await _jobs(sessionmaker, "mail.order")
    assert mail.payload["order_id"] == str(order.id) and len(mail.payload["code"]) >= 43
    assert order.code_hash is not None and order.code_hash != mail.payload["code"]
    assert await _jobs(sessionmaker, "mail.join") == []
    assert await _seats_taken(sessionmaker, webinar.id) == 3
    async with sessionmaker() as session:
        stored = await session.get(StripeEvent, evt["id"])
    assert stored.type == "checkout.session.completed" and stored.outcome == "order_paid"
    assert stored.processed_at is not None and stored.payload == evt


async def test_redelivery_changes_nothing(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    evt = _completed(webinar, quantity=2)
    assert (await factories.post_event(client, evt)).status == 200
    before = await _counts(sessionmaker)
    again = await factories.post_event(client, evt)
    assert again.status == 200
    assert (await again.json())["outcome"] == "duplicate"
    assert await _counts(sessionmaker) == before


async def test_same_event_ten_times_concurrently_to_two_instances(start_client, settings, sessionmaker):
    first, second = await start_client(settings), await start_client(settings)
    webinar = await factories.webinar(sessionmaker, capacity=10)
    evt = _completed(webinar, quantity=4)
    responses = await asyncio.gather(*(factories.post_event((first, second)[i % 2], evt) for i in range(10)))
    assert [r.status for r in responses] == [200] * 10
    outcomes = sorted([(await r.json())["outcome"] for r in responses])
    assert outcomes == ["duplicate"] * 9 + ["order_paid"]

    async with sessionmaker() as session:
        orders = list(await session.scalars(select(Order)))
    assert len(orders) == 1
    assert len(await _tickets(sessionmaker, orders[0].id)) == 4
    assert await _seats_taken(sessionmaker, webinar.id) == 4
    assert len(await _jobs(sessionmaker, "mail.order")) == 1
    assert (await _counts(sessionmaker))["stripe_events"] == 1


async def test_two_distinct_events_for_one_session_fulfil_once(start_client, settings, sessionmaker):
    first, second = await start_client(settings), await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    obj = factories.checkout_session(webinar, quantity=2)
    completed = factories.event("checkout.session.completed", obj)
    succeeded = factories.event("checkout.session.async_payment_succeeded", obj)
    completed_again = factories.event("checkout.session.completed", obj)  # a new event id, same session
    responses = await asyncio.gather(factories.post_event(first, completed), factories.post_event(second, succeeded),
                                     factories.post_event(second, completed_again))
    assert [r.status for r in responses] == [200, 200, 200]
    async with sessionmaker() as session:
        orders = list(await session.scalars(select(Order)))
    assert len(orders) == 1 and orders[0].status == OrderStatus.PAID
    assert len(await _tickets(sessionmaker, orders[0].id)) == 2
    assert await _seats_taken(sessionmaker, webinar.id) == 2


async def test_checkout_of_an_order_we_created_fills_that_order(start_client, stripe_settings, stripe_standin,
                                                                sessionmaker):
    client = await start_client(stripe_settings)
    webinar = await factories.webinar(sessionmaker)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"}, allow_redirects=False)
    assert response.status == 303
    [session_id] = stripe_standin.sessions
    obj = stripe_standin.complete_session(session_id, email="cy@example.com")
    delivered = await factories.post_event(client, factories.event("checkout.session.completed", obj))
    assert (await delivered.json())["outcome"] == "order_paid"
    async with sessionmaker() as session:
        orders = list(await session.scalars(select(Order)))
    assert len(orders) == 1
    assert str(orders[0].id) == obj["client_reference_id"] and orders[0].status == OrderStatus.PAID
    assert orders[0].stripe_payment_intent_id == obj["payment_intent"]
    assert [t.email for t in await _tickets(sessionmaker, orders[0].id)] == ["cy@example.com"] * 2


# --- amounts, webinars and modes that do not match ----------------------------------------------


@pytest.mark.parametrize("change", [
    {"amount_total": 2499},  # underpaid by one cent (price 2500)
    {"currency": "usd"},
    {"quantity": 2, "amount_total": 2500},  # one seat's price for two seats
    {"amount_total": 0},
])
async def test_wrong_amount_or_currency_flags_the_order_and_issues_nothing(client, sessionmaker, change):
    webinar = await factories.webinar(sessionmaker)
    obj = factories.checkout_session(webinar, **change)
    response = await factories.post_event(client, factories.event("checkout.session.completed", obj))
    assert response.status == 200
    assert (await response.json())["outcome"] == "order_flagged"
    order = await _order(sessionmaker, obj["id"])
    assert order.status == OrderStatus.FLAGGED and order.problem
    assert await _tickets(sessionmaker, order.id) == []
    assert await _seats_taken(sessionmaker, webinar.id) == 0
    assert await _jobs(sessionmaker, "mail.order") == []


@pytest.mark.parametrize("quantity", ["500", "0", "-1", "two", "1.5"])
async def test_a_quantity_checkout_never_sells_is_flagged(client, sessionmaker, quantity):
    webinar = await factories.webinar(sessionmaker, capacity=None)
    obj = factories.checkout_session(webinar, amount_total=webinar.price_amount * 500)
    obj["metadata"]["quantity"] = quantity
    response = await factories.post_event(client, factories.event("checkout.session.completed", obj))
    assert (await response.json())["outcome"] == "order_flagged"
    order = await _order(sessionmaker, obj["id"])
    assert order.status == OrderStatus.FLAGGED and order.problem
    assert (await _counts(sessionmaker))["tickets"] == 0


async def test_odd_but_signed_fields_do_not_break_the_webhook(client, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    odd_time = _completed(webinar)
    odd_time["created"] = 10 ** 30
    assert (await (await factories.post_event(client, odd_time)).json())["outcome"] == "order_paid"

    odd_currency = _completed(webinar, currency="euro")
    assert (await (await factories.post_event(client, odd_currency)).json())["outcome"] == "order_flagged"

    for body in (b'{"id": "evt_nan", "type": "x", "data": {"object": {"a": NaN}}}', b"[" * 100_000 + b"]" * 100_000):
        body, headers = factories.signed(body, settings.stripe_webhook_secrets[0])
        response = await client.post("/webhooks/stripe", data=body, headers=headers)
        assert response.status == 400
    assert (await _counts(sessionmaker))["stripe_events"] == 2


@pytest.mark.parametrize("metadata", [
    {"webinar_id": str(uuid.UUID(int=7)), "quantity": "1"},
    {"webinar_id": "not-a-uuid", "quantity": "1"},
    {},
])
async def test_unknown_webinar_is_stored_but_makes_no_order(client, sessionmaker, metadata):
    webinar = await factories.webinar(sessionmaker)
    obj = factories.checkout_session(webinar)
    obj["metadata"] = metadata
    evt = factories.event("checkout.session.completed", obj)
    response = await factories.post_event(client, evt)
    assert response.status == 200
    assert (await response.json())["outcome"] == "unknown_webinar"
    counts = await _counts(sessionmaker)
    assert counts == {"stripe_events": 1, "orders": 0, "tickets": 0, "jobs": 0}


async def test_livemode_mismatch_is_recorded_not_acted_on(client, sessionmaker, caplog):
    webinar = await factories.webinar(sessionmaker)
    evt = factories.event("checkout.session.completed", factories.checkout_session(webinar), livemode=True)
    with caplog.at_level(logging.WARNING):
        response = await factories.post_event(client, evt)
    assert response.status == 200
    assert (await response.json())["outcome"] == "livemode_mismatch"
    assert any("livemode" in r.getMessage() for r in caplog.records)
    assert await _counts(sessionmaker) == {"stripe_events": 1, "orders": 0, "tickets": 0, "jobs": 0}
    async with sessionmaker() as session:
        assert (await session.get(StripeEvent, evt["id"])).livemode is True


async def test_live_key_acts_on_live_events_only(start_client, make_settings, sessionmaker):
    client = await start_client(make_settings(stripe_secret_key="sk_live_" + "x" * 24,
                                              stripe_webhook_secret="whsec_live", jitsi_app_secret="j" * 32,
                                              session_key="s" * 32))
    webinar = await factories.webinar(sessionmaker)
    test_evt = factories.event("checkout.session.completed", factories.checkout_session(webinar), livemode=False)
    assert (await (await factories.post_event(client, test_evt)).json())["outcome"] == "livemode_mismatch"
    live_evt = factories.event("checkout.session.completed", factories.checkout_session(webinar), livemode=True)
    assert (await (await factories.post_event(client, live_evt)).json())["outcome"] == "order_paid"


async def test_other_api_version_is_processed_and_logged_once(client, sessionmaker, caplog, monkeypatch):
    monkeypatch.setattr(versions, "_WARNED", set())
    webinar = await factories.webinar(sessionmaker)
    evt = factories.event("checkout.session.completed", factories.checkout_session(webinar),
                          api_version="2019-01-01")
    again = factories.event("checkout.session.completed", factories.checkout_session(webinar),
                            api_version="2019-01-01")
    with caplog.at_level(logging.WARNING):
        response = await factories.post_event(client, evt)
        assert (await (await factories.post_event(client, again)).json())["outcome"] == "order_paid"
    assert (await response.json())["outcome"] == "order_paid"
    assert [r.api_version for r in caplog.records if "API version" in r.getMessage()] == ["2019-01-01"]
    async with sessionmaker() as session:
        assert (await session.get(StripeEvent, evt["id"])).api_version == "2019-01-01"


@pytest.mark.parametrize("event_type", EVENT_TYPES_THAT_CHANGE_NOTHING)
async def test_other_event_types_are_stored_and_answered_200(client, sessionmaker, event_type):
    evt = factories.event(event_type, {"id": "obj_1", "object": event_type.split(".")[0]})
    response = await factories.post_event(client, evt)
    assert response.status == 200
    assert (await response.json())["outcome"] == "ignored"
    assert await _counts(sessionmaker) == {"stripe_events": 1, "orders": 0, "tickets": 0, "jobs": 0}


# --- deliveries that are refused ---------------------------------------------------------------


def _refusals(secret: str, webinar) -> list[tuple[str, bytes, dict[str, str], int]]:
    good = json.dumps(_completed(webinar)).encode()
    _, good_headers = factories.signed(good, secret)
    cases = [
        ("forged", *factories.signed(good, "whsec_somebody_else"), 400),
        ("stale", *factories.signed(good, secret, timestamp=int(time.time()) - 301), 400),
        ("dated ahead", *factories.signed(good, secret, timestamp=int(time.time()) + 3600), 400),
        ("missing signature", good, {"Content-Type": "application/json"}, 400),
        ("tampered body", good.replace(b'"paid"', b'"PAID"'), good_headers, 400),
        ("garbage signature", good, {"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=abc"}, 400),
        ("malformed JSON", *factories.signed(b'{"id": "evt_1", "type": ', secret), 400),
        ("JSON but no event", *factories.signed(b'["evt_1"]', secret), 400),
        ("event without data.object", *factories.signed({"id": "evt_2", "type": "checkout.session.completed"}, secret), 400),
        ("wrong content type", good, {**good_headers, "Content-Type": "text/plain"}, 415),
        ("form content type", good, {**good_headers, "Content-Type": "application/x-www-form-urlencoded"}, 415),
    ]
    big = json.dumps({**_completed(webinar), "padding": "x" * (1024 * 1024)}).encode()
    cases.append(("oversized body", *factories.signed(big, secret), 413))
    return cases


async def test_refused_deliveries_answer_json_errors_and_store_nothing(client, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    for name, body, headers, status in _refusals(settings.stripe_webhook_secrets[0], webinar):
        # aiohttp wants a large body as a stream rather than one bytes object.
        data = io.BytesIO(body) if len(body) > 1024 * 1024 else body
        response = await client.post("/webhooks/stripe", data=data, headers=headers)
        assert response.status == status, (name, await response.text())
        assert response.content_type == "application/json", name
        error = (await response.json())["error"]
        assert error["code"] and error["message"], name
        assert "Traceback" not in error["message"], name
    assert await _counts(sessionmaker) == {"stripe_events": 0, "orders": 0, "tickets": 0, "jobs": 0}


async def test_stale_by_less_than_five_minutes_is_accepted(client, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    body, headers = factories.signed(_completed(webinar), settings.stripe_webhook_secrets[0],
                                     timestamp=int(time.time()) - 240)
    response = await client.post("/webhooks/stripe", data=body, headers=headers)
    assert response.status == 200


async def test_control_characters_from_stripe_are_dropped_not_fatal(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    session = factories.checkout_session(webinar, email="bea\x00@example.com",
                                         customer_details={"email": "bea\x00@example.com", "name": "Bea\x00 Buyer"})
    response = await factories.post_event(client, factories.event("checkout.session.completed", session))
    assert response.status == 200 and (await response.json())["outcome"] == "order_paid"
    async with sessionmaker() as db:
        [ticket] = list(await db.scalars(select(Ticket)))
    assert (ticket.email, ticket.name) == ("bea@example.com", "Bea Buyer")


async def test_secret_rotation_accepts_each_configured_secret(start_client, make_settings, sessionmaker):
    settings = make_settings(stripe_webhook_secret="whsec_old_one, whsec_new_one")
    assert settings.stripe_webhook_secrets == ("whsec_old_one", "whsec_new_one")
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    for secret in ("whsec_old_one", "whsec_new_one"):
        response = await factories.post_event(client, _completed(webinar), secret=secret)
        assert response.status == 200, secret
    refused = await factories.post_event(client, _completed(webinar), secret="whsec_retired")
    assert refused.status == 400
    counts = await _counts(sessionmaker)
    assert counts["stripe_events"] == 2 and counts["tickets"] == 2


# --- capacity ----------------------------------------------------------------------------------


async def test_paid_event_for_a_full_webinar_is_refunded_not_ticketed(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, capacity=2)
    assert (await (await factories.post_event(client, _completed(webinar, quantity=2))).json())["outcome"] == "order_paid"
    late = _completed(webinar, quantity=1)
    response = await factories.post_event(client, late)
    assert response.status == 200
    assert (await response.json())["outcome"] == "order_oversold"

    order = await _order(sessionmaker, late["data"]["object"]["id"])
    assert order.status == OrderStatus.OVERSOLD and order.refund_requested_at is not None
    assert await _tickets(sessionmaker, order.id) == []
    assert await _seats_taken(sessionmaker, webinar.id) == 2
    [refund] = await _jobs(sessionmaker, "payment.refund")
    assert refund.payload["order_id"] == str(order.id)

    # Redelivered, or re-sent as another event: still no ticket, still one refund.
    await factories.post_event(client, late)
    await factories.post_event(client, factories.event("checkout.session.completed", late["data"]["object"]))
    assert await _tickets(sessionmaker, order.id) == []
    assert len(await _jobs(sessionmaker, "payment.refund")) == 1


async def test_concurrent_buyers_never_pass_capacity(start_client, settings, sessionmaker):
    first, second = await start_client(settings), await start_client(settings)
    webinar = await factories.webinar(sessionmaker, capacity=3)
    events = [_completed(webinar, quantity=1) for _ in range(6)]
    responses = await asyncio.gather(*(factories.post_event((first, second)[i % 2], e) for i, e in enumerate(events)))
    outcomes = sorted([(await r.json())["outcome"] for r in responses])
    assert outcomes == ["order_oversold"] * 3 + ["order_paid"] * 3
    assert (await _counts(sessionmaker))["tickets"] == 3
    assert await _seats_taken(sessionmaker, webinar.id) == 3
    assert len(await _jobs(sessionmaker, "payment.refund")) == 3


# --- asynchronous payments, expiry, refunds, disputes -------------------------------------------


async def test_async_payment_succeeded_issues_the_tickets(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    obj = factories.checkout_session(webinar, quantity=2, payment_status="unpaid")
    waiting = await factories.post_event(client, factories.event("checkout.session.completed", obj))
    assert (await waiting.json())["outcome"] == "order_pending"
    order = await _order(sessionmaker, obj["id"])
    assert await _tickets(sessionmaker, order.id) == []

    paid = await factories.post_event(client, factories.event("checkout.session.async_payment_succeeded",
                                                              dict(obj, payment_status="paid")))
    assert (await paid.json())["outcome"] == "order_paid"
    assert len(await _tickets(sessionmaker, order.id)) == 2


async def test_async_payment_failed_issues_nothing(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    obj = factories.checkout_session(webinar, payment_status="unpaid")
    await factories.post_event(client, factories.event("checkout.session.completed", obj))
    failed = await factories.post_event(client, factories.event("checkout.session.async_payment_failed", obj))
    assert (await failed.json())["outcome"] == "order_failed"
    order = await _order(sessionmaker, obj["id"])
    assert order.status == OrderStatus.FAILED
    assert await _tickets(sessionmaker, order.id) == []
    assert await _seats_taken(sessionmaker, webinar.id) == 0


async def test_expired_checkout_expires_our_pending_order(start_client, stripe_settings, stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    webinar = await factories.webinar(sessionmaker)
    await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    [obj] = stripe_standin.sessions.values()
    expired = dict(obj, status="expired")
    response = await factories.post_event(client, factories.event("checkout.session.expired", expired))
    assert (await response.json())["outcome"] == "order_expired"
    order = await _order(sessionmaker, obj["id"])
    assert order.status == OrderStatus.EXPIRED and order.expired_at is not None
    assert await _tickets(sessionmaker, order.id) == []


async def _paid(client, sessionmaker, webinar, quantity=2):
    obj = factories.checkout_session(webinar, quantity=quantity)
    await factories.post_event(client, factories.event("checkout.session.completed", obj))
    order = await _order(sessionmaker, obj["id"])
    assert order.status == OrderStatus.PAID
    return obj, order


async def test_full_refund_revokes_every_ticket_and_frees_the_seats(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    obj, order = await _paid(client, sessionmaker, webinar)
    total = obj["amount_total"]
    partial = factories.charge(obj["payment_intent"], amount=total, amount_refunded=total // 2)
    response = await factories.post_event(client, factories.event("charge.refunded", partial))
    assert (await response.json())["outcome"] == "order_paid"
    assert all(t.status == TicketStatus.VALID for t in await _tickets(sessionmaker, order.id))

    full = factories.charge(obj["payment_intent"], amount=total, amount_refunded=total)
    response = await factories.post_event(client, factories.event("charge.refunded", full))
    assert (await response.json())["outcome"] == "order_refunded"
    tickets = await _tickets(sessionmaker, order.id)
    assert [(t.status, t.revoked_reason) for t in tickets] == [(TicketStatus.REVOKED, "refunded")] * 2
    assert await _seats_taken(sessionmaker, webinar.id) == 0
    # Both seats were still with the buyer: one notice to them.
    assert len(await _jobs(sessionmaker, "mail.revoked")) == 1


async def test_refund_before_completion_ends_revoked(client, sessionmaker):
    """Stripe may deliver charge.refunded before checkout.session.completed: same end state."""
    webinar = await factories.webinar(sessionmaker, capacity=5)
    obj = factories.checkout_session(webinar, quantity=2)
    total = obj["amount_total"]
    refund = factories.event("charge.refunded", factories.charge(obj["payment_intent"], amount=total,
                                                                 amount_refunded=total))
    early = await factories.post_event(client, refund)
    assert early.status == 200
    assert (await early.json())["outcome"] == "unmatched"
    assert (await _counts(sessionmaker))["orders"] == 0

    late = await factories.post_event(client, factories.event("checkout.session.completed", obj))
    assert (await late.json())["outcome"] == "order_refunded"
    order = await _order(sessionmaker, obj["id"])
    assert order.status == OrderStatus.REFUNDED
    assert all(t.status != TicketStatus.VALID for t in await _tickets(sessionmaker, order.id))
    assert await _seats_taken(sessionmaker, webinar.id) == 0
    async with sessionmaker() as session:
        assert (await session.get(StripeEvent, refund["id"])).outcome == "replayed"

    # And the usual order of events ends in the same place.
    obj2, order2 = await _paid(client, sessionmaker, webinar)
    await factories.post_event(client, factories.event("charge.refunded", factories.charge(
        obj2["payment_intent"], amount=total, amount_refunded=total)))
    order2 = await _order(sessionmaker, obj2["id"])
    assert order2.status == OrderStatus.REFUNDED
    assert all(t.status != TicketStatus.VALID for t in await _tickets(sessionmaker, order2.id))
    assert await _seats_taken(sessionmaker, webinar.id) == 0


async def test_dispute_revokes_the_tickets(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    obj, order = await _paid(client, sessionmaker, webinar)
    dispute = factories.dispute(obj["payment_intent"], amount=obj["amount_total"])
    response = await factories.post_event(client, factories.event("charge.dispute.created", dispute))
    assert (await response.json())["outcome"] == "order_disputed"
    tickets = await _tickets(sessionmaker, order.id)
    assert [(t.status, t.revoked_reason) for t in tickets] == [(TicketStatus.REVOKED, "disputed")] * 2
    assert await _seats_taken(sessionmaker, webinar.id) == 0


async def test_refund_found_by_order_id_in_payment_intent_metadata(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    obj, order = await _paid(client, sessionmaker, webinar, quantity=1)
    charge = factories.charge("pi_unknown_to_us", amount=obj["amount_total"], amount_refunded=obj["amount_total"],
                              metadata={"order_id": str(order.id)})
    response = await factories.post_event(client, factories.event("charge.refunded", charge))
    assert (await response.json())["outcome"] == "order_refunded"


# --- the database goes away ----------------------------------------------------------------------


async def test_database_down_answers_503_then_the_retry_succeeds(postgres_proxy, var_dir, start_client,
                                                                 postgres_url):
    proxy, proxied_url = postgres_proxy
    settings = Settings.from_env({"TICKETING_DATABASE_URL": proxied_url, "TICKETING_VAR_DIR": str(var_dir)},
                                 dotenv=None)
    client = await start_client(settings)
    direct = create_engine(postgres_url)
    sessionmaker = create_sessionmaker(direct)
    try:
        webinar = await factories.webinar(sessionmaker)
        assert (await factories.post_event(client, _completed(webinar))).status == 200  # the pool is warm

        evt = _completed(webinar, quantity=2)
        await proxy.stop()
        down = await factories.post_event(client, evt)
        assert down.status == 503
        assert (await down.json())["error"]["code"] == "unavailable"
        assert (await client.get("/readyz")).status == 503
        async with sessionmaker() as session:
            assert await session.get(StripeEvent, evt["id"]) is None

        await proxy.start()
        retry = await factories.post_event(client, evt)
        assert retry.status == 200, await retry.text()
        assert (await retry.json())["outcome"] == "order_paid"
        order = await _order(sessionmaker, evt["data"]["object"]["id"])
        assert len(await _tickets(sessionmaker, order.id)) == 2
    finally:
        await direct.dispose()

