"""Reconciliation: events the webhook never delivered are pulled from Stripe's API and processed."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import time

from sqlalchemy import select, update

from tests import factories
from tests.conftest import JITSI_APP_SECRET, SESSION_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.lifecycle.conftest import order_for
from ticketing.db import utcnow
from ticketing.db.models import OrderStatus, StripeEvent, SyncCursor
from ticketing.payments.reconcile import CURSOR, reconcile_periodically
from ticketing.payments.webhooks import store_event


async def test_an_event_never_posted_is_picked_up(stripe_settings, stripe_standin, sessionmaker, make_context):
    webinar = await factories.webinar(sessionmaker)
    missed = stripe_standin.queue_event(
        factories.event("checkout.session.completed", factories.checkout_session(webinar, quantity=2)))
    stripe_standin.queue_event(factories.event("customer.created", {"id": "cus_1", "object": "customer"}))
    ctx = await make_context(stripe_settings)

    await reconcile_periodically(ctx)

    order = await order_for(sessionmaker, missed["data"]["object"]["id"])
    assert order is not None and order.status == OrderStatus.PAID
    async with sessionmaker() as db:
        stored = list(await db.scalars(select(StripeEvent)))
        cursor = await db.get(SyncCursor, CURSOR)
    assert [(e.id, e.outcome) for e in stored] == [(missed["id"], "order_paid")]
    assert cursor.position == missed["created"]
    [listing] = stripe_standin.calls_to("GET", "/v1/events")
    assert set(listing.params["types"]) >= {"checkout.session.completed", "charge.refunded", "charge.dispute.created"}

    # The next pass reads from just before the cursor and changes nothing.
    await reconcile_periodically(ctx)
    since = int(stripe_standin.calls_to("GET", "/v1/events")[-1].params["created"]["gte"])
    assert missed["created"] - 3600 < since <= missed["created"]
    async with sessionmaker() as db:
        assert len(list(await db.scalars(select(StripeEvent)))) == 1


async def test_many_pages_and_an_outage_longer_than_the_cursor(stripe_settings, stripe_standin, sessionmaker,
                                                               make_context):
    webinar = await factories.webinar(sessionmaker, capacity=None)
    old = int(time.time()) - 2 * 86400
    events = [stripe_standin.queue_event(dict(factories.event(
        "checkout.session.completed", factories.checkout_session(webinar)), created=old + i)) for i in range(101)]
    ctx = await make_context(stripe_settings)
    async with sessionmaker.begin() as db:
        db.add(SyncCursor(name=CURSOR, position=old - 60))
    await reconcile_periodically(ctx)
    async with sessionmaker() as db:
        outcomes = list(await db.scalars(select(StripeEvent.outcome)))
    assert len(outcomes) == len(events) and set(outcomes) == {"order_paid"}
    assert len(stripe_standin.calls_to("GET", "/v1/events")) == 2


async def test_a_stored_event_left_unprocessed_is_retried(settings, sessionmaker, client, make_context):
    webinar = await factories.webinar(sessionmaker)
    event = factories.event("checkout.session.completed", factories.checkout_session(webinar))
    assert await store_event(sessionmaker, event)  # stored, then the process died before processing
    ctx = await make_context(settings)
    await reconcile_periodically(ctx)  # too young: its webhook request may still be at it
    assert await order_for(sessionmaker, event["data"]["object"]["id"]) is None
    async with sessionmaker.begin() as db:
        await db.execute(update(StripeEvent).values(received_at=utcnow() - dt.timedelta(minutes=2)))
    await reconcile_periodically(ctx)
    assert (await order_for(sessionmaker, event["data"]["object"]["id"])).status == OrderStatus.PAID


async def test_cli_reconcile(stripe_settings, stripe_standin, sessionmaker, database_url, var_dir, tmp_path):
    webinar = await factories.webinar(sessionmaker)
    missed = stripe_standin.queue_event(
        factories.event("checkout.session.completed", factories.checkout_session(webinar)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_DATABASE_URL=database_url, TICKETING_VAR_DIR=str(var_dir),
               TICKETING_STRIPE_SECRET_KEY=STRIPE_SECRET_KEY, TICKETING_STRIPE_WEBHOOK_SECRET=STRIPE_WEBHOOK_SECRET,
               TICKETING_STRIPE_API_BASE=stripe_standin.url, TICKETING_JITSI_APP_SECRET=JITSI_APP_SECRET, TICKETING_SESSION_KEY=SESSION_KEY)

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(sys.executable, "-m", "ticketing", "stripe", "reconcile", *args,
                                                       env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        return process.returncode, out.decode(), err.decode()

    code, out, err = await run("--since", "3d")
    assert code == 0, err
    assert "1 Stripe events listed, 1 not seen before" in out
    assert (await order_for(sessionmaker, missed["data"]["object"]["id"])).status == OrderStatus.PAID
    gte = int(stripe_standin.calls_to("GET", "/v1/events")[-1].params["created"]["gte"])
    assert abs(gte - (time.time() - 3 * 86400)) < 120

    code, out, err = await run("--since", "soon")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--since" in err
    stripe_standin.fail_next(3, status=500, should_retry=False)
    code, out, err = await run()
    assert code == 1
    assert err.strip().splitlines()[-1] == "ticketing: error: Stripe did not list its events: " \
                                           "The stand-in was told to fail this call."


async def test_a_refund_that_raced_its_checkout_is_settled_by_the_sweep(client, settings, sessionmaker):
    """A refund processed while its checkout was still uncommitted elsewhere stays unsettled
    and is applied by the sweep once an order names its payment intent."""
    from ticketing.payments.reconcile import retry_unprocessed

    webinar = await factories.webinar(sessionmaker)
    session = factories.checkout_session(webinar, quantity=1)
    refund = factories.event("charge.refunded", factories.charge(session["payment_intent"], amount=2500,
                                                                 amount_refunded=2500))
    unrelated = factories.event("charge.refunded", factories.charge("pi_of_another_product", amount=900,
                                                                    amount_refunded=900))
    for evt in (refund, unrelated):
        response = await factories.post_event(client, evt)
        assert (await response.json())["outcome"] == "unmatched"

    # The checkout lands without seeing the refund, as when both commit at the same moment.
    async with sessionmaker.begin() as db:
        await db.execute(update(StripeEvent).where(StripeEvent.id == refund["id"]).values(outcome="pending"))
    response = await factories.post_event(client, factories.event("checkout.session.completed", session))
    assert (await response.json())["outcome"] == "order_paid"
    async with sessionmaker.begin() as db:
        await db.execute(update(StripeEvent).where(StripeEvent.id == refund["id"]).values(outcome="unmatched"))

    later = utcnow() + dt.timedelta(minutes=2)
    assert await retry_unprocessed(sessionmaker, settings, now=later) == 1
    order = await order_for(sessionmaker, session["id"])
    assert order.status == OrderStatus.REFUNDED
    async with sessionmaker() as db:
        stored = {e.id: e for e in await db.scalars(select(StripeEvent))}
    assert stored[refund["id"]].processed_at is not None
    # A refund of a payment that is not ours is left alone, not retried every sweep.
    assert stored[unrelated["id"]].processed_at is None and stored[unrelated["id"]].outcome == "unmatched"
    assert await retry_unprocessed(sessionmaker, settings, now=later) == 0
