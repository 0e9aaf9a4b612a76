"""The Stripe stand-in answers the official client the way Stripe does, so other tests can trust it."""

from __future__ import annotations

import asyncio
import time

import pytest
import stripe

from tests.conftest import STRIPE_SECRET_KEY
from tests.stripe_standin import parse_params


@pytest.fixture
async def stripe_client(stripe_standin):
    client = stripe.StripeClient(STRIPE_SECRET_KEY, http_client=stripe.AIOHTTPClient(timeout=5),
                                 base_addresses={"api": stripe_standin.url}, max_network_retries=0)
    yield client
    await client._requestor._client.close_async()


SESSION = {
    "mode": "payment",
    "success_url": "http://shop.test/ok",
    "line_items": [{"quantity": 2, "price_data": {"currency": "eur", "unit_amount": 1500,
                                                  "product_data": {"name": "A talk"}}}],
    "metadata": {"webinar_id": "w1"},
}


def test_nested_form_parameters_parse_to_dicts_and_lists():
    assert parse_params([("line_items[0][price_data][currency]", "eur"), ("line_items[1][quantity]", "2"),
                         ("types[]", "a"), ("types[]", "b"), ("metadata[k]", "v")]) == {
        "line_items": [{"price_data": {"currency": "eur"}}, {"quantity": "2"}],
        "types": ["a", "b"],
        "metadata": {"k": "v"},
    }


async def test_checkout_session_create_retrieve_and_idempotency(stripe_client, stripe_standin):
    params = dict(SESSION, expires_at=int(time.time()) + 3600)
    first = await stripe_client.v1.checkout.sessions.create_async(params, {"idempotency_key": "k1"})
    again = await stripe_client.v1.checkout.sessions.create_async(params, {"idempotency_key": "k1"})
    assert first.id == again.id and first.id.startswith("cs_test_")
    assert first.amount_total == 3000 and first.url.startswith(stripe_standin.url)
    assert len(stripe_standin.sessions) == 1
    assert [c.idempotency_key for c in stripe_standin.calls_to("POST", "/v1/checkout/sessions")] == ["k1", "k1"]
    with pytest.raises(stripe.IdempotencyError):
        await stripe_client.v1.checkout.sessions.create_async(dict(params, mode="setup"), {"idempotency_key": "k1"})

    fetched = await stripe_client.v1.checkout.sessions.retrieve_async(first.id)
    assert fetched.metadata["webinar_id"] == "w1"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await stripe_client.v1.checkout.sessions.retrieve_async("cs_test_nope")
    assert missing.value.http_status == 404


async def test_checkout_session_missing_params_are_refused(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as error:
        await stripe_client.v1.checkout.sessions.create_async({"mode": "payment", "success_url": "http://x.test/"})
    assert error.value.param == "line_items"


async def test_refunds_check_the_amount_left_and_replay_by_key(stripe_client, stripe_standin):
    stripe_standin.add_payment_intent("pi_1", 5000)
    refund = await stripe_client.v1.refunds.create_async({"payment_intent": "pi_1", "metadata": {"order_id": "o1"}},
                                                         {"idempotency_key": "refund-o1"})
    replay = await stripe_client.v1.refunds.create_async({"payment_intent": "pi_1", "metadata": {"order_id": "o1"}},
                                                         {"idempotency_key": "refund-o1"})
    assert refund.id == replay.id and refund.amount == 5000 and refund.status == "succeeded"
    assert len(stripe_standin.refunds) == 1
    with pytest.raises(stripe.InvalidRequestError):
        await stripe_client.v1.refunds.create_async({"payment_intent": "pi_1", "amount": 1})


async def test_failures_and_hangs_are_injected(stripe_client, stripe_standin):
    stripe_standin.fail_next(1, status=500, should_retry=False)
    with pytest.raises(stripe.APIError):
        await stripe_client.v1.refunds.create_async({"payment_intent": "pi_2", "amount": 100})
    assert stripe_standin.refunds == []

    stripe_standin.hang_next(1)
    call = asyncio.create_task(stripe_client.v1.refunds.create_async({"payment_intent": "pi_2", "amount": 100}))
    while not stripe_standin.calls_to("POST", "/v1/refunds")[1:]:
        await asyncio.sleep(0)  # yield until the request has reached the stand-in
    assert not call.done()
    stripe_standin.release()
    assert (await call).amount == 100


async def test_events_filter_and_page(stripe_client, stripe_standin):
    now = int(time.time())
    for i in range(5):
        stripe_standin.queue_event({"id": f"evt_{i}", "object": "event", "type": "charge.refunded",
                                    "created": now - 100 + i, "data": {"object": {}}})
    stripe_standin.queue_event({"id": "evt_other", "object": "event", "type": "checkout.session.completed",
                                "created": now, "data": {"object": {}}})

    page = await stripe_client.v1.events.list_async({"type": "charge.refunded", "limit": 2})
    assert [e.id for e in page.data] == ["evt_4", "evt_3"] and page.has_more
    rest = await stripe_client.v1.events.list_async({"type": "charge.refunded", "limit": 10, "starting_after": "evt_3"})
    assert [e.id for e in rest.data] == ["evt_2", "evt_1", "evt_0"] and not rest.has_more
    recent = await stripe_client.v1.events.list_async({"types": ["checkout.session.completed", "charge.refunded"],
                                                       "created": {"gte": now - 97}})
    assert [e.id for e in recent.data] == ["evt_other", "evt_4", "evt_3"]
