"""Invoices and tax: what each organizer's settings ask of Stripe Checkout, the invoice arriving
in an event or looked up once by id, the credit note after a refund, and dev mode's stand-in."""

from __future__ import annotations

import itertools

import aiohttp
import pytest
import stripe
from sqlalchemy import select

import ticketing.workers  # noqa: F401  (registers every job kind the worker runs)
from tests import factories
from tests.conftest import JITSI_APP_SECRET, SESSION_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.org.conftest import sign_in
from tests.seats import order_codes
from ticketing.db.models import Job, Order, OrderStatus, Organizer, Ticket
from ticketing.jobs.registry import JobContext, PermanentError
from ticketing.mail.jobs import send_order
from ticketing.payments.invoices import CREDIT_NOTE_KIND, KIND, fetch_invoice, issue_credit_note
from ticketing.payments.refunds import refund
from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client


async def _set(sessionmaker, organizer_id, **values) -> None:
    async with sessionmaker.begin() as session:
        organizer = await session.get(Organizer, organizer_id)
        for name, value in values.items():
            setattr(organizer, name, value)


async def _order(sessionmaker, **where) -> Order:
    async with sessionmaker() as session:
        return await session.scalar(select(Order).filter_by(**where))


async def _jobs(sessionmaker, kind: str) -> list[Job]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Job).where(Job.kind == kind)))


@pytest.fixture
async def job_context(sessionmaker):
    made: list[JobContext] = []

    async def build(settings) -> JobContext:
        ctx = JobContext(settings=settings, sessionmaker=sessionmaker, stripe=create_stripe_client(settings),
                         http=aiohttp.ClientSession())
        made.append(ctx)
        return ctx

    yield build
    for ctx in made:
        await ctx.http.close()
        if ctx.stripe is not None:
            await close_stripe_client(ctx.stripe)


# Every combination of the four settings, off and on.
SWITCHES = ("invoices", "collect_tax_id", "automatic_tax", "prices_include_tax")
COMBINATIONS = [dict(zip(SWITCHES, values, strict=True)) for values in itertools.product((False, True), repeat=4)]


async def test_the_session_carries_the_organizers_invoice_and_tax_settings(start_client, stripe_settings,
                                                                          stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    organizer, _ = await factories.organizer(sessionmaker, name="Widget Academy")
    webinar = await factories.webinar(sessionmaker, organizer, title="Widgets", price_amount=2000, currency="eur")
    footer = "Widget Academy GmbH · Hauptstr. 1 · 10115 Berlin\nVAT DE123456789"
    for number, settings in enumerate(COMBINATIONS):
        await _set(sessionmaker, organizer.id, invoice_footer=footer, **settings)
        response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"}, allow_redirects=False)
        assert response.status == 303, await response.text()
        params = stripe_standin.calls_to("POST", "/v1/checkout/sessions")[number].params
        order = await _order(sessionmaker, stripe_session_id=list(stripe_standin.sessions)[number])
        metadata = {"webinar_id": str(webinar.id), "quantity": "2", "order_id": str(order.id)}

        if settings["invoices"]:
            assert params["invoice_creation"] == {"enabled": "true", "invoice_data": {
                "description": "Widget Academy · Widgets", "footer": footer, "metadata": metadata}}, settings
        else:
            assert "invoice_creation" not in params, settings
        if settings["collect_tax_id"]:
            assert params["tax_id_collection"] == {"enabled": "true"}
            assert params["billing_address_collection"] == "required"
        else:
            assert "tax_id_collection" not in params and "billing_address_collection" not in params, settings
        [price] = [item["price_data"] for item in params["line_items"]]
        if settings["automatic_tax"]:
            assert params["automatic_tax"] == {"enabled": "true"}
            assert price["tax_behavior"] == ("inclusive" if settings["prices_include_tax"] else "exclusive")
        else:
            # Without Stripe Tax no tax is computed: the price goes as it always did.
            assert "automatic_tax" not in params and "tax_behavior" not in price, settings
        assert price["unit_amount"] == "2000"
        # The stand-in took the session as Stripe would and keeps what was asked.
        created = stripe_standin.sessions[order.stripe_session_id]
        assert created["invoice_creation"]["enabled"] is settings["invoices"]
        assert created["automatic_tax"]["enabled"] is settings["automatic_tax"]


async def test_an_invoice_in_its_own_event_is_kept_without_asking_stripe(start_client, stripe_settings,
                                                                        stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    organizer, _ = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=1500)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    assert response.status == 303
    [session_id] = stripe_standin.sessions
    completed = stripe_standin.complete_session(session_id)
    invoice = stripe_standin.invoices[completed["invoice"]]

    # Stripe sends the invoice's event and the checkout's in any order: here the invoice first.
    response = await factories.post_event(client, factories.event("invoice.paid", invoice))
    assert response.status == 200
    response = await factories.post_event(client, factories.event("checkout.session.completed", completed))
    assert response.status == 200

    order = await _order(sessionmaker, stripe_session_id=session_id)
    assert order.status == OrderStatus.PAID
    assert (order.invoice_id, order.invoice_number) == (invoice["id"], invoice["number"])
    assert (order.invoice_url, order.invoice_pdf) == (invoice["hosted_invoice_url"], invoice["invoice_pdf"])
    assert await _jobs(sessionmaker, KIND) == []
    assert stripe_standin.calls_to("GET", f"/v1/invoices/{invoice['id']}") == []

    # The same invoice event again, or one with other links, changes nothing.
    changed = {**invoice, "number": "OTHER-1", "hosted_invoice_url": "https://elsewhere.example/x"}
    assert (await factories.post_event(client, factories.event("invoice.finalized", changed))).status == 200
    again = await _order(sessionmaker, id=order.id)
    assert (again.invoice_number, again.invoice_url) == (invoice["number"], invoice["hosted_invoice_url"])


async def test_an_invoice_known_only_by_id_is_looked_up_once_by_a_job(start_client, stripe_settings, stripe_standin,
                                                                     sessionmaker, job_context):
    client = await start_client(stripe_settings)
    organizer, _ = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer)
    await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    [session_id] = stripe_standin.sessions
    completed = stripe_standin.complete_session(session_id)
    evt = factories.event("checkout.session.completed", completed)
    assert (await factories.post_event(client, evt)).status == 200
    assert (await factories.post_event(client, evt)).status == 200  # delivered twice: still one lookup

    order = await _order(sessionmaker, stripe_session_id=session_id)
    assert order.status == OrderStatus.PAID and order.invoice_id == completed["invoice"]
    assert order.invoice_number is None
    [job] = await _jobs(sessionmaker, KIND)
    assert job.payload == {"order_id": str(order.id), "invoice_id": completed["invoice"]}
    # The webhook answered without asking Stripe.
    assert stripe_standin.calls_to("GET", f"/v1/invoices/{completed['invoice']}") == []

    ctx = await job_context(stripe_settings)
    # Stripe down: the job fails so that the worker tries again later.
    stripe_standin.fail_next(1, status=500, should_retry=False)
    with pytest.raises(stripe.APIError):
        await fetch_invoice(ctx, job.payload)
    assert (await _order(sessionmaker, id=order.id)).invoice_number is None

    await fetch_invoice(ctx, job.payload)
    invoice = stripe_standin.invoices[completed["invoice"]]
    stored = await _order(sessionmaker, id=order.id)
    assert (stored.invoice_number, stored.invoice_url, stored.invoice_pdf) == (
        invoice["number"], invoice["hosted_invoice_url"], invoice["invoice_pdf"])

    # An invoice Stripe does not know never will be found: the job is parked, not retried.
    with pytest.raises(PermanentError):
        await fetch_invoice(ctx, {"order_id": str(order.id), "invoice_id": "in_unknown"})


async def test_a_refund_credit_note_is_shown_on_the_order(start_client, stripe_settings, stripe_standin,
                                                          sessionmaker):
    client = await start_client(stripe_settings)
    organizer, _ = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=3000)
    await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    [session_id] = stripe_standin.sessions
    completed = stripe_standin.complete_session(session_id)
    invoice = stripe_standin.invoices[completed["invoice"]]
    await factories.post_event(client, factories.event("invoice.paid", invoice))
    await factories.post_event(client, factories.event("checkout.session.completed", completed))

    refund = factories.charge(completed["payment_intent"], amount=3000, amount_refunded=3000)
    assert (await factories.post_event(client, factories.event("charge.refunded", refund))).status == 200
    note = stripe_standin.credit_note(invoice["id"], 3000)
    assert (await factories.post_event(client, factories.event("credit_note.created", note))).status == 200
    # A credit note of an invoice that is none of ours changes nothing.
    stranger = {**note, "id": "cn_other", "invoice": "in_other", "number": "X-1"}
    assert (await factories.post_event(client, factories.event("credit_note.created", stranger))).status == 200

    order = await _order(sessionmaker, stripe_session_id=session_id)
    assert order.status == OrderStatus.REFUNDED
    assert (order.credit_note_number, order.credit_note_pdf) == (note["number"], note["pdf"])
    assert order.invoice_number == invoice["number"]


async def test_dev_mode_issues_a_local_stand_in_invoice(client, settings, sessionmaker):
    assert settings.dev_checkout
    organizer, _ = await factories.organizer(sessionmaker, name="Widget Academy")
    await _set(sessionmaker, organizer.id, invoices=True, invoice_footer="Registered in Berlin")
    webinar = await factories.webinar(sessionmaker, organizer, title="Widgets", price_amount=1200)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"}, allow_redirects=False)
    path = response.headers["Location"].removeprefix(settings.base_url)
    paid = await client.post(path, data={"email": "bea@example.com", "name": "Bea"}, allow_redirects=False)
    assert paid.status == 303, await paid.text()

    order = await _order(sessionmaker, webinar_id=webinar.id)
    assert order.status == OrderStatus.PAID
    assert order.invoice_id.startswith("in_test_") and order.invoice_number.startswith("TEST-")
    assert order.invoice_url == f"{settings.base_url}/dev/invoices/{order.invoice_id}"
    assert order.invoice_pdf is None
    # Nothing to look up: the number came with the invoice's own event.
    assert await _jobs(sessionmaker, KIND) == []

    page = await client.get(order.invoice_url.removeprefix(settings.base_url))
    assert page.status == 200
    text = await page.text()
    for expected in (order.invoice_number, "Widget Academy", "Widgets", "Bea", "Registered in Berlin", "TEST INVOICE"):
        assert expected in text, expected
    assert "24.00" in text or "24,00" in text
    assert (await client.get("/dev/invoices/in_test_unknown")).status == 404


async def test_dev_checkout_without_invoices_issues_none(client, settings, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    path = response.headers["Location"].removeprefix(settings.base_url)
    await client.post(path, data={"email": "bea@example.com"}, allow_redirects=False)
    order = await _order(sessionmaker, webinar_id=webinar.id)
    assert order.status == OrderStatus.PAID and order.invoice_id is None


async def test_the_invoice_job_parks_a_payload_it_cannot_read(stripe_settings, job_context):
    ctx = await job_context(stripe_settings)
    for payload in ({}, {"order_id": "x", "invoice_id": "in_1"}, {"order_id": "8b0e6f8e-1d7c-4f57-9d6e-5b1c1c1c1c1c"}):
        with pytest.raises(PermanentError):
            await fetch_invoice(ctx, payload)


async def _paid_invoiced_order(client, stripe_standin, sessionmaker, price: int = 3000):
    organizer, key = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=price)
    await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "2"}, allow_redirects=False)
    [session_id] = stripe_standin.sessions
    completed = stripe_standin.complete_session(session_id)
    invoice = stripe_standin.invoices[completed["invoice"]]
    await factories.post_event(client, factories.event("invoice.paid", invoice))
    await factories.post_event(client, factories.event("checkout.session.completed", completed))
    return key, await _order(sessionmaker, stripe_session_id=session_id), invoice


async def test_a_refund_this_service_makes_asks_stripe_for_its_credit_note(start_client, stripe_settings,
                                                                          stripe_standin, sessionmaker, job_context):
    client = await start_client(stripe_settings)
    key, order, invoice = await _paid_invoiced_order(client, stripe_standin, sessionmaker)
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.order_id == order.id).order_by(Ticket.seq))
    response = await client.post(f"/api/tickets/{ticket.id}/revoke", json={"refund": True},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200, await response.text()
    ctx = await job_context(stripe_settings)
    [refund_job] = await _jobs(sessionmaker, "payment.refund")
    await refund(ctx, refund_job.payload)
    [stripe_refund] = stripe_standin.refunds
    [job] = await _jobs(sessionmaker, CREDIT_NOTE_KIND)
    assert job.payload == {"order_id": str(order.id), "invoice_id": invoice["id"], "refund_id": stripe_refund["id"],
                           "amount": 3000}

    await issue_credit_note(ctx, job.payload)
    await issue_credit_note(ctx, job.payload)  # a retry: Stripe answers the same note again
    calls = stripe_standin.calls_to("POST", "/v1/credit_notes")
    assert [c.idempotency_key for c in calls] == [f"credit-note-{stripe_refund['id']}"] * 2
    assert calls[0].params["refunds"] == [{"refund": stripe_refund["id"], "amount_refunded": "3000"}]
    [note] = stripe_standin.credit_notes
    assert (note["invoice"], note["amount"]) == (invoice["id"], 3000)
    stored = await _order(sessionmaker, id=order.id)
    assert (stored.credit_note_number, stored.credit_note_pdf) == (note["number"], note["pdf"])

    # Stripe's own event for the same note afterwards changes nothing.
    assert (await factories.post_event(client, factories.event("credit_note.created", note))).status == 200
    assert (await _order(sessionmaker, id=order.id)).credit_note_number == note["number"]


async def test_a_test_refund_in_dev_mode_gets_a_stand_in_credit_note(client, settings, sessionmaker, make_worker):
    organizer, key = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=1200)
    response = await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1"}, allow_redirects=False)
    path = response.headers["Location"].removeprefix(settings.base_url)
    await client.post(path, data={"email": "bea@example.com"}, allow_redirects=False)
    order = await _order(sessionmaker, webinar_id=webinar.id)
    async with sessionmaker() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.order_id == order.id))
    response = await client.post(f"/api/tickets/{ticket.id}/revoke", json={"refund": True},
                                 headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    await make_worker(settings).run_until_idle()
    stored = await _order(sessionmaker, id=order.id)
    assert stored.amount_refunded == 1200
    assert stored.credit_note_number == f"{stored.invoice_number}-C1"
    page = await client.get(f"/dev/invoices/{stored.invoice_id}")
    assert f"Credit note {stored.credit_note_number}" in await page.text()
    assert await _jobs(sessionmaker, CREDIT_NOTE_KIND) == []


async def test_the_order_page_the_api_the_csv_and_the_console_show_the_invoice(start_client, stripe_settings,
                                                                              stripe_standin, sessionmaker):
    client = await start_client(stripe_settings)
    key, order, invoice = await _paid_invoiced_order(client, stripe_standin, sessionmaker)
    [code] = (await order_codes(sessionmaker)).values()
    page = await (await client.get(f"/o/{code}")).text()
    assert f'<a href="{invoice["hosted_invoice_url"]}">{invoice["number"]}</a>' in page
    assert f'href="{invoice["invoice_pdf"]}"' in page
    assert 'id="order-credit-note"' not in page

    note = stripe_standin.credit_note(invoice["id"], 3000)
    await factories.post_event(client, factories.event("credit_note.created", note))
    page = await (await client.get(f"/o/{code}")).text()
    assert f'<a href="{note["pdf"]}">{note["number"]}</a>' in page

    headers = {"Authorization": f"Bearer {key}"}
    listed = await (await client.get(f"/api/webinars/{order.webinar_id}/tickets", headers=headers)).json()
    assert [t["invoice_number"] for t in listed["tickets"]] == [invoice["number"]] * 2
    csv_text = await (await client.get(f"/api/webinars/{order.webinar_id}/tickets",
                                       headers={**headers, "Accept": "text/csv"})).text()
    header, *rows = csv_text.splitlines()
    column = header.split(",").index("invoice_number")
    assert [row.split(",")[column] for row in rows] == [invoice["number"]] * 2

    await sign_in(client, sessionmaker, "ada@example.com")
    console = await (await client.get(f"/org/webinars/{order.webinar_id}")).text()
    assert f'<a href="{invoice["hosted_invoice_url"]}">{invoice["number"]}</a>' in console
    assert f"credit note {note['number']}" in console


async def test_the_public_page_tells_buyers_about_tax_and_invoices(client, sessionmaker):
    organizer, _ = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=2000)
    german = await factories.webinar(sessionmaker, organizer, price_amount=2000, language="de")
    assert 'id="billing-note"' not in await (await client.get(f"/w/{webinar.id}")).text()

    await _set(sessionmaker, organizer.id, automatic_tax=True, invoices=True)
    note = (await (await client.get(f"/w/{webinar.id}")).text()).split('id="billing-note">')[1].split("</p>")[0]
    assert note == "Tax is added at payment, by where you are. Every paid order comes with an invoice."
    await _set(sessionmaker, organizer.id, prices_include_tax=True, invoices=False)
    note = (await (await client.get(f"/w/{german.id}")).text()).split('id="billing-note">')[1].split("</p>")[0]
    assert note.strip() == "Die Preise enthalten die Steuer."


@pytest.mark.parametrize("event_type, obj", [
    ("invoice.paid", {"id": 7, "metadata": {}}),
    ("invoice.paid", {"id": "in_x", "metadata": "order 1"}),
    ("invoice.finalized", {"id": "in_" + "x" * 300}),
    ("invoice.paid", {"id": "in_y", "metadata": {"order_id": "not an id"}, "number": 5, "hosted_invoice_url": []}),
    ("credit_note.created", {"id": "cn_x", "invoice": None}),
    ("credit_note.created", {"id": "cn_x", "invoice": {"id": ["in_x"]}, "number": "C-1"}),
])
async def test_malformed_invoice_events_are_stored_and_change_nothing(client, sessionmaker, event_type, obj):
    webinar = await factories.webinar(sessionmaker)
    paid = factories.checkout_session(webinar, invoice="in_x")
    assert (await factories.post_event(client, factories.event("checkout.session.completed", paid))).status == 200
    before = await _order(sessionmaker, stripe_session_id=paid["id"])
    response = await factories.post_event(client, factories.event(event_type, obj))
    assert response.status == 200
    after = await _order(sessionmaker, stripe_session_id=paid["id"])
    assert (after.invoice_id, after.invoice_number, after.invoice_url, after.credit_note_number) == (
        before.invoice_id, None, None, None)


async def test_the_order_mail_asks_stripe_for_an_invoice_known_only_by_id(start_client, make_settings, stripe_standin,
                                                                         sessionmaker, smtp):
    settings = make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                             stripe_api_base=stripe_standin.url, jitsi_app_secret=JITSI_APP_SECRET,
                             session_key=SESSION_KEY, smtp_url=smtp.url)
    client = await start_client(settings)
    organizer, _ = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer, title="Widgets", price_amount=2000)
    await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1", "email": "bea@example.com"},
                      allow_redirects=False)
    [session_id] = stripe_standin.sessions
    completed = stripe_standin.complete_session(session_id)
    assert (await factories.post_event(client, factories.event("checkout.session.completed", completed))).status == 200
    invoice = stripe_standin.invoices[completed["invoice"]]

    ctx = JobContext(settings=settings, sessionmaker=sessionmaker, stripe=create_stripe_client(settings),
                     http=aiohttp.ClientSession())
    try:
        [mail_job] = await _jobs(sessionmaker, "mail.order")
        await send_order(ctx, mail_job.payload)
    finally:
        await ctx.http.close()
        await close_stripe_client(ctx.stripe)
    [mail] = smtp.to("bea@example.com")
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert f"Invoice {invoice['number']}: {invoice['hosted_invoice_url']}" in text
    assert (await _order(sessionmaker, stripe_session_id=session_id)).invoice_number == invoice["number"]
    assert len(stripe_standin.calls_to("GET", f"/v1/invoices/{invoice['id']}")) == 1


async def test_the_order_mail_goes_without_the_invoice_when_stripe_does_not_answer(
        start_client, make_settings, stripe_standin, sessionmaker, smtp):
    settings = make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                             stripe_api_base=stripe_standin.url, jitsi_app_secret=JITSI_APP_SECRET,
                             session_key=SESSION_KEY, smtp_url=smtp.url)
    client = await start_client(settings)
    organizer, _ = await factories.organizer(sessionmaker)
    await _set(sessionmaker, organizer.id, invoices=True)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=2000)
    await client.post(f"/w/{webinar.id}/checkout", data={"quantity": "1", "email": "bea@example.com"},
                      allow_redirects=False)
    [session_id] = stripe_standin.sessions
    completed = stripe_standin.complete_session(session_id)
    await factories.post_event(client, factories.event("checkout.session.completed", completed))
    ctx = JobContext(settings=settings, sessionmaker=sessionmaker, stripe=create_stripe_client(settings),
                     http=aiohttp.ClientSession())
    stripe_standin.fail_next(1, status=500, should_retry=False)
    try:
        [mail_job] = await _jobs(sessionmaker, "mail.order")
        await send_order(ctx, mail_job.payload)
    finally:
        await ctx.http.close()
        await close_stripe_client(ctx.stripe)
    [mail] = smtp.to("bea@example.com")
    assert "Invoice" not in mail.get_body(preferencelist=("plain",)).get_content()
    # The lookup job is still queued: the order page gets the invoice later.
    assert len(await _jobs(sessionmaker, KIND)) == 1


@pytest.mark.parametrize("charged, tax, outcome", [
    (2975, 475, OrderStatus.PAID),  # prices without tax: Stripe Tax adds it on top
    (2500, 399, OrderStatus.PAID),  # prices with tax: it is inside the amount
    (2975, 0, OrderStatus.FLAGGED),  # more than asked, and no tax to explain it
    (2975, 300, OrderStatus.FLAGGED),
])
async def test_tax_stripe_adds_on_top_of_the_price_is_no_wrong_payment(client, sessionmaker, charged, tax, outcome):
    organizer, _ = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, organizer, price_amount=2500)
    obj = factories.checkout_session(webinar, amount_total=charged, total_details={
        "amount_discount": 0, "amount_shipping": 0, "amount_tax": tax})
    assert (await factories.post_event(client, factories.event("checkout.session.completed", obj))).status == 200
    order = await _order(sessionmaker, stripe_session_id=obj["id"])
    assert (order.status, order.amount_total, order.amount_tax) == (outcome, charged, tax)
    async with sessionmaker() as session:
        tickets = list(await session.scalars(select(Ticket).where(Ticket.order_id == order.id)))
    assert len(tickets) == (1 if outcome == OrderStatus.PAID else 0)
