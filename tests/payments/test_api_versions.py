"""Events of every supported Stripe API version, in Stripe's own shapes, read alike."""

from __future__ import annotations

import logging
import types
import uuid

import pytest
import stripe
from sqlalchemy import select

from tests import factories, stripe_shapes
from ticketing.db.models import Order, OrderStatus, Ticket, TicketStatus
from ticketing.payments import versions
from ticketing.payments.fulfilment import plain_checkout
from ticketing.settings import Settings

VERSIONS = stripe_shapes.VERSIONS


def test_the_declared_version_is_the_one_the_pinned_library_sends():
    assert stripe.api_version == versions.API_VERSION


@pytest.mark.parametrize("version", [*VERSIONS, None])
def test_supported(version):
    assert versions.is_supported(version)


@pytest.mark.parametrize("version", [
    "2019-12-03",  # older than the oldest supported
    "2021-05-01",  # no such version
    "2024-06-20.acacia", "2025-03-30.basil",  # before their release
    "2026-11-25.endive", "2027-03-31.fig",  # newer than this code
    "2025-04-30.basil.preview", "latest", "",
])
def test_not_supported(version):
    assert not versions.is_supported(version)


def test_an_unknown_version_is_logged_once_per_version(monkeypatch, caplog):
    monkeypatch.setattr(versions, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="ticketing.payments.versions"):
        assert [versions.check_version(v) for v in ("2019-12-03", "2019-12-03", "2027-03-31.fig", "2024-06-20")] \
            == [False, False, False, True]
    assert [r.api_version for r in caplog.records] == ["2019-12-03", "2027-03-31.fig"]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_version_takes_the_fast_path(version):
    webinar = types.SimpleNamespace(id=uuid.uuid4(), price_amount=2500, currency="eur")
    obj = stripe_shapes.session(version, webinar, quantity=2, email="Bea@Example.com")
    evt = factories.event("checkout.session.completed", obj, api_version=version)
    checkout = plain_checkout(evt, Settings.from_env({}))
    assert checkout is not None
    assert (checkout.webinar_id, checkout.quantity, checkout.amount_total, checkout.currency, checkout.email,
            checkout.payment_intent) == (webinar.id, 2, 5000, "eur", "Bea@Example.com", obj["payment_intent"])


@pytest.mark.parametrize("version", VERSIONS)
async def test_every_handled_type_gives_the_same_outcome_without_a_warning(client, sessionmaker, caplog, version):
    webinar = await factories.webinar(sessionmaker, capacity=20)

    async def post(event_type, obj):
        response = await factories.post_event(client, factories.event(event_type, obj, api_version=version))
        assert response.status == 200
        return (await response.json())["outcome"]

    with caplog.at_level(logging.WARNING, logger="ticketing"):
        refunded = stripe_shapes.session(version, webinar, quantity=2)
        assert await post("checkout.session.completed", refunded) == "order_paid"
        intent = refunded["payment_intent"]
        assert await post("charge.refunded", stripe_shapes.charge(version, intent, amount=5000,
                                                                  amount_refunded=5000)) == "order_refunded"

        disputed = stripe_shapes.session(version, webinar)
        assert await post("checkout.session.completed", disputed) == "order_paid"
        dispute = stripe_shapes.dispute(version, disputed["payment_intent"], amount=2500)
        assert await post("charge.dispute.created", dispute) == "order_disputed"
        assert await post("charge.dispute.closed", dict(dispute, status="lost")) == "order_disputed"

        later = stripe_shapes.session(version, webinar, payment_status="unpaid")
        assert await post("checkout.session.completed", later) == "order_pending"
        paid = dict(later, payment_status="paid", payment_intent=later["payment_intent"] or "pi_" + uuid.uuid4().hex)
        assert await post("checkout.session.async_payment_succeeded", paid) == "order_paid"

        failing = stripe_shapes.session(version, webinar, payment_status="unpaid")
        assert await post("checkout.session.completed", failing) == "order_pending"
        assert await post("checkout.session.async_payment_failed", failing) == "order_failed"

        invoiced = dict(stripe_shapes.session(version, webinar), invoice="in_" + uuid.uuid4().hex[:24])
        assert await post("checkout.session.completed", invoiced) == "order_paid"
        bill = stripe_shapes.invoice(version, invoiced["invoice"], amount=2500)
        assert await post("invoice.paid", bill) == "invoice_recorded"
        note = stripe_shapes.credit_note(version, invoiced["invoice"], amount=2500)
        assert await post("credit_note.created", note) == "credit_note_recorded"

        expired = stripe_shapes.session(version, webinar, payment_status="unpaid", status="expired")
        assert (expired["payment_intent"] is None) == stripe_shapes.introduces_intent_on_payment(version)
        assert await post("checkout.session.expired", expired) == "order_expired"
    assert [r.getMessage() for r in caplog.records] == []

    async with sessionmaker() as session:
        orders = {o.stripe_session_id: o for o in await session.scalars(select(Order))}
        tickets = list(await session.scalars(select(Ticket)))
    assert {s["id"]: orders[s["id"]].status for s in (refunded, disputed, later, failing, expired)} == {
        refunded["id"]: OrderStatus.REFUNDED, disputed["id"]: OrderStatus.DISPUTED, later["id"]: OrderStatus.PAID,
        failing["id"]: OrderStatus.FAILED, expired["id"]: OrderStatus.EXPIRED}
    assert (orders[invoiced["id"]].invoice_number, orders[invoiced["id"]].invoice_pdf,
            orders[invoiced["id"]].credit_note_number) == (bill["number"], bill["invoice_pdf"], note["number"])
    assert orders[refunded["id"]].email == "buyer@example.com"
    assert sorted((t.order_id == orders[later["id"]].id, t.status) for t in tickets) == sorted(
        [(False, TicketStatus.REVOKED)] * 3 + [(False, TicketStatus.VALID), (True, TicketStatus.VALID)])
