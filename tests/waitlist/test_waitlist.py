"""The waitlist through real HTTP, real SMTP on loopback and signed webhooks, on SQLite and
PostgreSQL: joining, offers made by the events that free seats, their expiry and checkout."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import func, select, update

from tests import factories
from tests.conftest import JITSI_APP_SECRET, SESSION_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.org.conftest import csrf_of, sign_in
from ticketing.db import utcnow
from ticketing.db.models import (
    Job,
    Order,
    OrderLine,
    OrderStatus,
    Registration,
    Ticket,
    TicketStatus,
    TicketType,
    WaitlistEntry,
    WaitlistOutcome,
    Webinar,
)
from ticketing.errors import Conflict
from ticketing.jobs import enqueue
from ticketing.orders import registrations, ticket_types
from ticketing.tickets.capacity import free_seats
from ticketing.waitlist import service as waitlist
from ticketing.webinars import service as webinars
from ticketing.webinars.sales import MIN_CHECKOUT_WINDOW

LINK = re.compile(r"/wl/([A-Za-z0-9_-]{40,})(/confirm)?")


@pytest.fixture
def mail_settings(make_settings, smtp):
    return make_settings(smtp_url=smtp.url)


@pytest.fixture
async def world(mail_settings, smtp, start_client, sessionmaker, make_worker):
    client = await start_client(mail_settings)
    owner, key = await factories.organizer(sessionmaker)
    return World(client, sessionmaker, make_worker(mail_settings), smtp, owner, key)


class World:
    """The running service, its worker and the mailbox, with the steps people take."""

    def __init__(self, client, sessionmaker, worker, smtp, owner, key) -> None:
        self.client, self.sessionmaker, self.worker, self.smtp = client, sessionmaker, worker, smtp
        self.owner, self.key = owner, key

    async def sold_out(self, capacity: int = 1, orders: int = 1, **fields) -> tuple[Webinar, list[dict]]:
        """A webinar whose `capacity` seats are all sold, in `orders` paid orders."""
        webinar = await factories.webinar(self.sessionmaker, self.owner, capacity=capacity, **fields)
        paid = []
        for n in range(orders):
            obj = factories.checkout_session(webinar, quantity=capacity // orders, email=f"buyer{n}@example.com")
            response = await factories.post_event(self.client, factories.event("checkout.session.completed", obj))
            assert response.status == 200
            paid.append(obj)
        assert await self.seats(webinar) == capacity
        return webinar, paid

    async def seats(self, webinar) -> int:
        async with self.sessionmaker() as db:
            return (await db.get(Webinar, webinar.id)).seats_taken

    def mails(self, email: str, subject: str) -> list:
        return [m for m in self.smtp.to(email) if m["Subject"].startswith(subject)]

    def code(self, message) -> str:
        [code] = {code for code, _ in LINK.findall(message.get_body(preferencelist=("plain",)).get_content())}
        return code

    async def join(self, webinar, email: str, quantity: int = 1) -> str:
        """Join and confirm; the person's code (their page's link)."""
        response = await self.client.post(f"/w/{webinar.id}/waitlist", data={"email": email, "quantity": str(quantity)})
        assert response.status == 202, await response.text()
        await self.worker.run_until_idle()
        [mail] = self.mails(email, "Confirm your place on the waitlist")
        code = self.code(mail)
        assert f"/wl/{code}/confirm" in mail.get_body(preferencelist=("plain",)).get_content()
        confirmed = await self.client.get(f"/wl/{code}/confirm")
        assert confirmed.status == 200
        await self.worker.run_until_idle()
        return code

    async def entry(self, email: str) -> WaitlistEntry:
        async with self.sessionmaker() as db:
            return await db.scalar(select(WaitlistEntry).where(WaitlistEntry.email == email))

    async def offer_code(self, email: str) -> str:
        [mail] = self.mails(email, "A seat is free for you")
        return self.code(mail)

    async def run_out(self, email: str) -> None:
        """As if the person's offer time had passed: its expiry job is due now."""
        entry = await self.entry(email)
        past = utcnow() - dt.timedelta(seconds=1)
        async with self.sessionmaker.begin() as db:
            await db.execute(update(WaitlistEntry).where(WaitlistEntry.id == entry.id).values(offered_until=past))
            await db.execute(update(Job).where(Job.kind == waitlist.EXPIRE_JOB, Job.status == "queued",
                                               Job.payload["entry_id"].as_string() == str(entry.id))
                             .values(due_at=past))
        await self.worker.run_until_idle()

    async def pay_offer(self, code: str, webinar) -> tuple[dict, Order]:
        """Start the offer's checkout and have Stripe say it was paid."""
        response = await self.client.post(f"/wl/{code}/checkout", data={}, allow_redirects=False)
        assert response.status == 303, await response.text()
        session_id = response.headers["Location"].rsplit("/", 1)[1]
        async with self.sessionmaker() as db:
            order = await db.scalar(select(Order).where(Order.stripe_session_id == session_id))
        obj = factories.checkout_session(webinar, quantity=order.quantity, session_id=session_id, order_id=order.id,
                                         amount_total=order.expected_amount, email=order.email)
        return obj, order

    async def order(self, order_id) -> Order:
        async with self.sessionmaker() as db:
            return await db.get(Order, order_id)


async def test_join_confirm_see_the_place_and_leave(world):
    webinar, _ = await world.sold_out(title="Widgets")
    page = await (await world.client.get(f"/w/{webinar.id}")).text()
    assert "Sold out — join the waitlist" in page and f'action="/w/{webinar.id}/waitlist"' in page

    bad = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "not an address"})
    assert bad.status == 422 and "Enter a valid email address." in await bad.text()
    too_many = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "x@example.com", "quantity": "51"})
    assert too_many.status == 422
    async with world.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(WaitlistEntry)) == 0

    ann = await world.join(webinar, "ann@example.com")
    bob = await world.join(webinar, "bob@example.com", quantity=2)
    assert 'data-position="2"' in await (await world.client.get(f"/wl/{bob}")).text()
    # The same address again, within the minute: no second entry, no second mail.
    again = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "ANN@example.com"})
    assert again.status == 202
    await world.worker.run_until_idle()
    assert len(world.mails("ann@example.com", "Confirm")) == 1

    left = await world.client.post(f"/wl/{ann}/leave")
    assert left.status == 200 and 'data-state="left"' in await left.text()
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.DECLINED
    assert 'data-position="1"' in await (await world.client.get(f"/wl/{bob}")).text()
    assert (await world.client.get("/wl/" + "x" * 43)).status == 404

    # A webinar with seats on sale takes no waitlist.
    open_webinar = await factories.webinar(world.sessionmaker, capacity=5)
    refused = await world.client.post(f"/w/{open_webinar.id}/waitlist", json={"email": "cy@example.com"})
    assert refused.status == 409 and "takes no waitlist now" in await refused.text()


async def test_a_refund_offers_the_seat_to_the_first_once_and_the_offer_buys_it(world):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    assert world.mails("ann@example.com", "A seat is free") == []

    refund = factories.charge(paid["payment_intent"], amount=paid["amount_total"], amount_refunded=paid["amount_total"])
    event = factories.event("charge.refunded", refund)
    assert (await factories.post_event(world.client, event)).status == 200
    await world.worker.run_until_idle()
    # The same webhook again and a duplicate offer job change nothing.
    assert (await factories.post_event(world.client, event)).status == 200
    async with world.sessionmaker.begin() as db:
        await enqueue(db, "waitlist.offer", {"webinar_id": str(webinar.id)})
    await world.worker.run_until_idle()

    code = await world.offer_code("ann@example.com")
    assert world.mails("bob@example.com", "A seat is free") == []
    assert await world.seats(webinar) == 1  # held for Ann
    ann = await world.entry("ann@example.com")
    assert ann.held and ann.offered_until > utcnow() + dt.timedelta(hours=11)
    # Held: the public cannot buy it.
    public = await world.client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1})
    assert public.status == 409
    offer_page = await (await world.client.get(f"/wl/{code}")).text()
    assert 'data-state="offer"' in offer_page and "Buy the held seats" in offer_page

    obj, order = await world.pay_offer(code, webinar)
    assert order.expected_amount == webinar.price_amount
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    assert (await world.order(order.id)).status == OrderStatus.PAID
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.BOUGHT
    assert await world.seats(webinar) == 1  # converted, not taken twice
    async with world.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Ticket).where(Ticket.order_id == order.id)) == 1
    assert (await world.client.post(f"/wl/{code}/checkout", data={})).status == 409


async def test_offers_run_out_in_turn_and_a_payment_after_its_offer_is_refunded(world):
    webinar, _ = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    async with world.sessionmaker() as db:
        ticket = await db.scalar(select(Ticket))
    organizer_key = world.key
    revoked = await world.client.post(f"/api/tickets/{ticket.id}/revoke", json={},
                                      headers={"Authorization": f"Bearer {organizer_key}"})
    assert revoked.status == 200, await revoked.text()
    await world.worker.run_until_idle()
    ann_code = await world.offer_code("ann@example.com")
    obj, order = await world.pay_offer(ann_code, webinar)  # Ann starts paying, but too late

    await world.run_out("ann@example.com")
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.EXPIRED
    assert world.mails("ann@example.com", "Your offer has run out")
    bob = await world.entry("bob@example.com")
    assert bob.held and await world.seats(webinar) == 1
    assert (await world.client.get(f"/wl/{ann_code}")).status == 404  # the run-out mail's link replaced it

    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    late = await world.order(order.id)
    assert late.status == OrderStatus.OVERSOLD and late.refund_requested_at is not None
    assert (await world.entry("bob@example.com")).held and await world.seats(webinar) == 1

    await world.run_out("bob@example.com")
    assert (await world.entry("bob@example.com")).outcome == WaitlistOutcome.EXPIRED
    assert await world.seats(webinar) == 0  # nobody left in line: back on sale
    assert (await world.client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1},
                                    allow_redirects=False)).status == 303


async def test_two_seats_freed_at_once_make_two_offers(world):
    webinar, paid = await world.sold_out(capacity=2, orders=2)
    for name in ("ann", "bob", "cy"):
        await world.join(webinar, f"{name}@example.com")
    events = [factories.event("charge.refunded", factories.charge(p["payment_intent"], amount=p["amount_total"],
                                                                  amount_refunded=p["amount_total"])) for p in paid]
    answers = await asyncio.gather(*(factories.post_event(world.client, e) for e in events))
    assert [a.status for a in answers] == [200, 200]

    async def offer_once() -> None:
        async with world.sessionmaker.begin() as db:
            await waitlist.make_offers(db, webinar.id, now=utcnow())

    await asyncio.gather(offer_once(), offer_once(), world.worker.run_until_idle())
    await world.worker.run_until_idle()
    held = [(await world.entry(f"{n}@example.com")).held for n in ("ann", "bob", "cy")]
    assert held == [True, True, False]
    assert await world.seats(webinar) == 2
    assert len(world.mails("ann@example.com", "A seat")) == len(world.mails("bob@example.com", "A seat")) == 1


async def test_capacity_raised_offers_the_new_seats_to_whoever_fits(world):
    webinar, _ = await world.sold_out()
    await world.join(webinar, "ann@example.com", quantity=2)
    await world.join(webinar, "bob@example.com")
    key = world.key
    response = await world.client.patch(f"/api/webinars/{webinar.id}", json={"capacity": 2},
                                        headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    await world.worker.run_until_idle()
    # One new seat: Ann wants two, so Bob, whose one fits, gets it; Ann keeps her place.
    assert (await world.entry("bob@example.com")).held
    assert not (await world.entry("ann@example.com")).held
    response = await world.client.patch(f"/api/webinars/{webinar.id}", json={"capacity": 4},
                                        headers={"Authorization": f"Bearer {key}"})
    await world.worker.run_until_idle()
    assert (await world.entry("ann@example.com")).held and await world.seats(webinar) == 4


async def test_the_sales_end_closes_the_list_and_tells_who_waits(world):
    webinar, _ = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    unconfirmed = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "bob@example.com"})
    assert unconfirmed.status == 202
    async with world.sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id)
                         .values(sales_end=utcnow() - dt.timedelta(minutes=1)))
    await world.worker.run_periodic()
    await world.worker.run_until_idle()
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.CLOSED
    assert (await world.entry("bob@example.com")).outcome == WaitlistOutcome.CLOSED
    assert len(world.mails("ann@example.com", "The waitlist has closed")) == 1
    assert world.mails("bob@example.com", "The waitlist has closed") == []
    await world.worker.run_periodic()  # again: nothing more
    await world.worker.run_until_idle()
    assert len(world.mails("ann@example.com", "The waitlist has closed")) == 1


async def test_an_offer_cut_short_by_a_crash_is_made_once_after_restart(world):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    async with world.sessionmaker.begin() as db:
        await db.execute(update(Ticket).values(status="revoked", revoked_reason="organizer"))
        await free_seats(db, webinar.id, {(await ticket_types.default_type(db, webinar.id)).id: 1})
    # A worker makes the offer, then dies before its transaction commits: nothing of it stays.
    async with world.sessionmaker() as db:
        made = await waitlist.make_offers(db, webinar.id, now=utcnow())
        assert len(made) == 1
        await db.rollback()
    assert not (await world.entry("ann@example.com")).held
    await world.worker.run_until_idle()  # the restarted worker runs the still queued job
    await world.worker.run_until_idle()
    assert (await world.entry("ann@example.com")).held
    assert len(world.mails("ann@example.com", "A seat is free")) == 1
    assert await world.seats(webinar) == 1


async def test_the_organizer_lists_removes_and_offers_by_hand(world):
    webinar, _ = await world.sold_out()
    key = world.key
    auth = {"Authorization": f"Bearer {key}"}
    await world.join(webinar, "ann@example.com", quantity=2)
    await world.join(webinar, "bob@example.com")
    listed = await (await world.client.get(f"/api/webinars/{webinar.id}/waitlist", headers=auth)).json()
    assert [(e["email"], e["position"], e["quantity"], e["confirmed"], e["outcome"]) for e in listed["entries"]] == [
        ("ann@example.com", 1, 2, True, None), ("bob@example.com", 2, 1, True, None)]
    assert listed["figures"] == {"waited": 2, "offered": 0, "bought": 0, "waiting": 2}
    csv = await world.client.get(f"/api/webinars/{webinar.id}/waitlist", headers={**auth, "Accept": "text/csv"})
    assert csv.status == 200 and (await csv.text()).splitlines()[0].startswith("id,position,email")

    bob_id = listed["entries"][1]["id"]
    refused = await world.client.post(f"/api/waitlist/{bob_id}/offer", headers=auth)
    assert refused.status == 409 and "seat" in (await refused.json())["error"]["message"]
    # Waitlist off, one more seat, then Bob gets it by hand.
    patched = await world.client.patch(f"/api/webinars/{webinar.id}", json={"waitlist": False, "capacity": 2},
                                       headers=auth)
    assert (await patched.json())["waitlist"] is False
    offered = await world.client.post(f"/api/waitlist/{bob_id}/offer", headers=auth)
    assert offered.status == 200 and (await offered.json())["offered_until"]
    await world.worker.run_until_idle()
    assert await world.offer_code("bob@example.com")

    removed = await world.client.delete(f"/api/waitlist/{bob_id}", headers=auth)
    assert removed.status == 204 and await world.seats(webinar) == 1  # his held seat is free again
    assert (await world.client.delete(f"/api/waitlist/{bob_id}", headers=auth)).status == 409
    other, other_key = await factories.organizer(world.sessionmaker, email="eve@example.com")
    assert (await world.client.delete(f"/api/waitlist/{listed['entries'][0]['id']}",
                                      headers={"Authorization": f"Bearer {other_key}"})).status == 403
    assert (await world.client.delete("/api/waitlist/nope", headers=auth)).status == 404


@pytest.mark.parametrize("value", [0, 169, "12", 1.5, True])
async def test_offer_hours_must_be_whole_hours_up_to_a_week(world, value):
    webinar = await factories.webinar(world.sessionmaker, world.owner)
    key = world.key
    response = await world.client.patch(f"/api/webinars/{webinar.id}", json={"offer_hours": value},
                                        headers={"Authorization": f"Bearer {key}"})
    assert response.status == 422 and (await response.json())["error"]["field"] == "offer_hours"
    fine = await world.client.patch(f"/api/webinars/{webinar.id}", json={"offer_hours": 168},
                                    headers={"Authorization": f"Bearer {key}"})
    assert (await fine.json())["offer_hours"] == 168


async def test_the_console_lists_the_waitlist_and_its_forms_act_without_script(world):
    webinar, _ = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    await sign_in(world.client, world.sessionmaker, world.owner.email)
    page = await (await world.client.get(f"/org/webinars/{webinar.id}")).text()
    assert 'id="waitlist-entries"' in page and "ann@example.com" in page and "Offer seats now" in page
    bob = await world.entry("bob@example.com")

    refused = await world.client.post(f"/org/waitlist/{bob.id}/offer", data={"csrf_token": csrf_of(page)})
    assert refused.status == 200 and "Not enough seats are free for this entry" in await refused.text()
    assert not (await world.entry("bob@example.com")).held

    removed = await world.client.post(f"/org/waitlist/{bob.id}/remove", data={"csrf_token": csrf_of(page)})
    assert removed.status == 200 and "bob@example.com is off the waitlist." in await removed.text()
    assert (await world.entry("bob@example.com")).outcome == WaitlistOutcome.REMOVED
    forged = await world.client.post(f"/org/waitlist/{bob.id}/remove", data={"csrf_token": "forged"})
    assert forged.status == 403

    form = await (await world.client.get(f"/org/webinars/{webinar.id}/edit")).text()
    assert 'name="waitlist"' in form and 'name="offer_hours" type="number" min="1" max="168"' in form


async def test_a_german_webinars_waitlist_mails_and_pages_are_german(world):
    webinar, _ = await world.sold_out(title="Widgets", language="de")
    response = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "ann@example.com"})
    assert response.status == 202 and "Sehen Sie in Ihr Postfach" in await response.text()
    await world.worker.run_until_idle()
    [mail] = world.mails("ann@example.com", "Platz auf der Warteliste bestätigen: Widgets")
    code = world.code(mail)
    text = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Um die Warteliste zu verlassen" in text and f"/wl/{code}" in text
    page = await (await world.client.get(f"/wl/{code}/confirm")).text()
    assert "Sie sind Nummer 1 auf der Warteliste." in page and "Warteliste verlassen" in page


async def test_an_offers_stripe_checkout_ends_with_the_offer(make_settings, smtp, stripe_standin, start_client,
                                                              sessionmaker, make_worker):
    settings = make_settings(smtp_url=smtp.url, stripe_secret_key=STRIPE_SECRET_KEY,
                             stripe_webhook_secret=STRIPE_WEBHOOK_SECRET, stripe_api_base=stripe_standin.url,
                             jitsi_app_secret=JITSI_APP_SECRET, session_key=SESSION_KEY, checkout_expires_minutes="1440")
    owner, key = await factories.organizer(sessionmaker)
    world = World(await start_client(settings), sessionmaker, make_worker(settings), smtp, owner, key)
    webinar, _ = await world.sold_out(offer_hours=2)
    await world.join(webinar, "ann@example.com")
    await world.client.patch(f"/api/webinars/{webinar.id}", json={"capacity": 2},
                             headers={"Authorization": f"Bearer {key}"})
    await world.worker.run_until_idle()
    code = await world.offer_code("ann@example.com")
    response = await world.client.post(f"/wl/{code}/checkout", data={}, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"].startswith(stripe_standin.url)
    [session] = stripe_standin.sessions.values()
    until = (await world.entry("ann@example.com")).offered_until
    assert session["expires_at"] == int(until.timestamp())  # not the day Checkout would give otherwise
    assert session["amount_total"] == webinar.price_amount


async def _buy(world, webinar, lines: dict[str, int]) -> tuple[dict, Order]:
    """A public checkout of seats by type, paid."""
    response = await world.client.post(f"/w/{webinar.id}/checkout", json={"types": lines}, allow_redirects=False)
    assert response.status == 303, await response.text()
    session_id = response.headers["Location"].rsplit("/", 1)[1]
    async with world.sessionmaker() as db:
        order = await db.scalar(select(Order).where(Order.stripe_session_id == session_id))
    obj = factories.checkout_session(webinar, quantity=order.quantity, session_id=session_id, order_id=order.id,
                                     amount_total=order.expected_amount, email=order.email or "buyer@example.com")
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    assert (await world.order(order.id)).status == OrderStatus.PAID
    return obj, order


async def test_a_sold_out_type_has_its_own_waitlist_beside_the_types_on_sale(world):
    auth = {"Authorization": f"Bearer {world.key}"}
    webinar = await factories.webinar(world.sessionmaker, world.owner, capacity=5)
    added = await world.client.post(f"/api/webinars/{webinar.id}/ticket-types", headers=auth,
                                    json={"name": "VIP", "price_amount": 9900, "capacity": 1})
    assert added.status == 201, await added.text()
    vip = (await added.json())["id"]
    async with world.sessionmaker() as db:
        default = str((await ticket_types.default_type(db, webinar.id)).id)
    vip_paid, _ = await _buy(world, webinar, {vip: 1})

    page = await (await world.client.get(f"/w/{webinar.id}")).text()
    assert "VIP is sold out — join its waitlist" in page and f'name="ticket_type_id" value="{vip}"' in page
    assert f'id="quantity-{default}"' in page and f'id="quantity-{vip}"' not in page
    assert 'id="sold-out-waitlist"' not in page
    # The webinar itself has seats: no list for it, nor for a type that does not exist.
    refused = await world.client.post(f"/w/{webinar.id}/waitlist", json={"email": "cy@example.com"})
    assert refused.status == 409
    unknown = await world.client.post(f"/w/{webinar.id}/waitlist",
                                      data={"email": "cy@example.com", "ticket_type_id": "nope"})
    assert unknown.status == 404

    for name in ("ann", "bob"):
        response = await world.client.post(f"/w/{webinar.id}/waitlist", data={
            "email": f"{name}@example.com", "quantity": "1", "ticket_type_id": vip})
        assert response.status == 202, await response.text()
        await world.worker.run_until_idle()
        code = world.code(world.mails(f"{name}@example.com", "Confirm your place")[0])
        assert (await world.client.get(f"/wl/{code}/confirm")).status == 200
    assert str((await world.entry("bob@example.com")).ticket_type_id) == vip
    # The other type still sells to the public; a VIP seat that comes free would not.
    _, standard = await _buy(world, webinar, {default: 1})
    assert (await world.client.post(f"/w/{webinar.id}/checkout", json={"types": {vip: 1}})).status == 409

    # A seat of the default type coming free is no VIP seat: nobody is offered it.
    async with world.sessionmaker() as db:
        ticket = await db.scalar(select(Ticket).where(Ticket.order_id == standard.id))
    revoked = await world.client.post(f"/api/tickets/{ticket.id}/revoke", json={}, headers=auth)
    assert revoked.status == 200, await revoked.text()
    await world.worker.run_until_idle()
    assert world.mails("ann@example.com", "A seat is free") == []
    assert not (await world.entry("ann@example.com")).held

    refund = factories.charge(vip_paid["payment_intent"], amount=vip_paid["amount_total"],
                              amount_refunded=vip_paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    assert (await world.entry("ann@example.com")).held
    assert not (await world.entry("bob@example.com")).held  # the type has one seat: one offer
    async with world.sessionmaker() as db:
        kind = await db.get(TicketType, uuid.UUID(vip))
        assert kind.seats_taken == 1 and (await db.get(Webinar, webinar.id)).seats_taken == 1

    obj, order = await world.pay_offer(await world.offer_code("ann@example.com"), webinar)
    async with world.sessionmaker() as db:
        lines = (await db.execute(select(OrderLine.ticket_type_id, OrderLine.quantity)
                                  .where(OrderLine.order_id == order.id))).all()
    assert [(str(type_id), count) for type_id, count in lines] == [(vip, 1)]
    assert order.expected_amount == 9900
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.BOUGHT
    async with world.sessionmaker() as db:
        assert (await db.get(TicketType, uuid.UUID(vip))).seats_taken == 1


async def test_a_free_webinars_offer_registers_the_held_seat_without_payment(world):
    webinar = await factories.webinar(world.sessionmaker, world.owner, capacity=1, price_amount=0, title="Gratis")
    async with world.sessionmaker.begin() as db:
        await registrations.register(db, webinar.id, "reg@example.com", now=utcnow())
    async with world.sessionmaker() as db:
        [job] = list(await db.scalars(select(Job).where(Job.kind == registrations.CONFIRM_MAIL)))
    assert (await world.client.get(f"/r/{job.payload['code']}")).status == 200
    page = await (await world.client.get(f"/w/{webinar.id}")).text()
    assert "Sold out — join the waitlist" in page
    two = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "ann@example.com", "quantity": "2"})
    assert two.status == 422
    await world.join(webinar, "ann@example.com")

    async with world.sessionmaker() as db:
        ticket = await db.scalar(select(Ticket))
    revoked = await world.client.post(f"/api/tickets/{ticket.id}/revoke", json={},
                                      headers={"Authorization": f"Bearer {world.key}"})
    assert revoked.status == 200, await revoked.text()
    await world.worker.run_until_idle()
    code = await world.offer_code("ann@example.com")
    [offer] = world.mails("ann@example.com", "A seat is free for you")
    text = offer.get_body(preferencelist=("plain",)).get_content()
    html = offer.get_body(preferencelist=("html",)).get_content()
    assert "yours to register for until" in text and "buy" not in text.lower()
    assert "Register or decline" in html and "buy" not in html.lower()
    offer_page = await (await world.client.get(f"/wl/{code}")).text()
    assert "Register for the held seat" in offer_page and 'name="code"' not in offer_page

    registered = await world.client.post(f"/wl/{code}/checkout", data={}, allow_redirects=False)
    assert registered.status == 303 and "/checkout/success?order=" in registered.headers["Location"], await registered.text()
    await world.worker.run_until_idle()
    entry = await world.entry("ann@example.com")
    assert entry.outcome == WaitlistOutcome.BOUGHT and not entry.held
    order = await world.order(entry.order_id)
    assert order.status == OrderStatus.PAID and order.amount_total == 0
    assert await world.seats(webinar) == 1  # the hold became the seat
    async with world.sessionmaker() as db:
        assert await db.scalar(select(func.count()).select_from(Ticket).where(Ticket.order_id == order.id)) == 1
        registration = await db.scalar(select(Registration).where(Registration.email == "ann@example.com"))
        assert registration.order_id == order.id and registration.confirmed_at is not None
    assert len(world.mails("ann@example.com", "Your order for Gratis")) == 1
    assert (await world.client.post(f"/wl/{code}/checkout", data={})).status == 409


async def test_a_lost_dispute_frees_the_seat_for_exactly_one_offer(world):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    dispute = factories.dispute(paid["payment_intent"], amount=paid["amount_total"])
    for event_type, status in (("charge.dispute.created", "needs_response"), ("charge.dispute.closed", "lost"),
                               ("charge.dispute.closed", "lost")):
        event = factories.event(event_type, dict(dispute, status=status))
        assert (await factories.post_event(world.client, event)).status == 200
        await world.worker.run_until_idle()
    assert len(world.mails("ann@example.com", "A seat is free")) == 1
    assert world.mails("bob@example.com", "A seat is free") == []
    assert (await world.entry("ann@example.com")).held and not (await world.entry("bob@example.com")).held
    assert await world.seats(webinar) == 1


async def test_a_ticket_revoked_in_the_console_makes_one_offer(world):
    webinar, _ = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    await sign_in(world.client, world.sessionmaker, world.owner.email)
    async with world.sessionmaker() as db:
        ticket = await db.scalar(select(Ticket))
    confirm = await (await world.client.get(f"/org/tickets/{ticket.id}/revoke")).text()
    revoked = await world.client.post(f"/org/tickets/{ticket.id}/revoke", data={"csrf_token": csrf_of(confirm)})
    assert revoked.status == 200 and "is revoked" in await revoked.text()
    await world.worker.run_until_idle()
    again = await world.client.post(f"/org/tickets/{ticket.id}/revoke", data={"csrf_token": csrf_of(confirm)})
    assert again.status in (200, 409)
    await world.worker.run_until_idle()
    assert len(world.mails("ann@example.com", "A seat is free")) == 1
    assert world.mails("bob@example.com", "A seat is free") == []
    assert await world.seats(webinar) == 1


async def test_the_waitlist_switched_off_makes_no_offers_and_sells_freed_seats_again(world):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    patched = await world.client.patch(f"/api/webinars/{webinar.id}", json={"waitlist": False},
                                       headers={"Authorization": f"Bearer {world.key}"})
    assert patched.status == 200
    page = await (await world.client.get(f"/w/{webinar.id}")).text()
    assert 'id="sold-out-waitlist"' not in page and "This webinar is sold out." in page

    refund = factories.charge(paid["payment_intent"], amount=paid["amount_total"], amount_refunded=paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    assert world.mails("ann@example.com", "A seat is free") == []
    assert not (await world.entry("ann@example.com")).held and await world.seats(webinar) == 0
    page = await (await world.client.get(f"/w/{webinar.id}")).text()
    assert 'data-state="on_sale"' in page and 'id="sold-out-waitlist"' not in page
    bought = await world.client.post(f"/w/{webinar.id}/checkout", json={"quantity": 1}, allow_redirects=False)
    assert bought.status == 303


async def test_an_offer_by_hand_beside_the_offer_job_takes_the_locks_in_its_order(world, backend):
    if backend == "sqlite":
        pytest.skip("SQLite has one writer at a time: there is no lock order to get wrong")
    webinar, _ = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    async with world.sessionmaker.begin() as db:
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(capacity=2))
    bob = await world.entry("bob@example.com")
    async with world.sessionmaker() as db:
        owner = await db.get(type(world.owner), world.owner.id)

    async def by_hand():
        async with world.sessionmaker.begin() as db:
            return await waitlist.offer_by_hand(db, owner, bob.id, now=utcnow())

    # The offer job has the webinar's row when the organizer offers Bob a seat by hand: the job
    # goes on to lock the entries in line, Bob's among them.
    async with world.sessionmaker.begin() as job:
        await webinars.get_webinar(job, webinar.id, for_update=True)
        hand = asyncio.create_task(by_hand())
        await asyncio.sleep(0.3)
        made = await waitlist.make_offers(job, webinar.id, now=utcnow())
        assert [entry.email for entry in made] == ["ann@example.com"]
    with pytest.raises(Conflict) as refused:
        await hand
    assert refused.value.reason == "no_seats"
    assert (await world.entry("ann@example.com")).held and not (await world.entry("bob@example.com")).held
    assert await world.seats(webinar) == 2


async def test_an_offer_paid_through_an_earlier_checkout_of_it_keeps_its_seat(world):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    refund = factories.charge(paid["payment_intent"], amount=paid["amount_total"], amount_refunded=paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    code = await world.offer_code("ann@example.com")
    # Two checkouts of one offer (a second tab, a second click); Ann pays in the first.
    first, first_order = await world.pay_offer(code, webinar)
    second, second_order = await world.pay_offer(code, webinar)
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", first))).status == 200
    assert (await world.order(first_order.id)).status == OrderStatus.PAID
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.BOUGHT
    assert await world.seats(webinar) == 1
    # Paying the other one too buys nothing twice: it is refunded as oversold.
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", second))).status == 200
    late = await world.order(second_order.id)
    assert late.status == OrderStatus.OVERSOLD and late.refund_requested_at is not None
    assert await world.seats(webinar) == 1


async def test_refunding_an_offers_order_offers_its_seat_again_and_a_removed_offer_paid_late_is_refunded(world):
    webinar, [paid] = await world.sold_out()
    for name in ("ann", "bob", "cy"):
        await world.join(webinar, f"{name}@example.com")
    refund = factories.charge(paid["payment_intent"], amount=paid["amount_total"], amount_refunded=paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    obj, order = await world.pay_offer(await world.offer_code("ann@example.com"), webinar)
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.BOUGHT

    # Ann's order, bought through the offer, refunded: its seat is offered once, to Bob.
    ann_refund = factories.charge(obj["payment_intent"], amount=obj["amount_total"], amount_refunded=obj["amount_total"])
    for _ in range(2):
        assert (await factories.post_event(world.client, factories.event("charge.refunded", ann_refund))).status == 200
        await world.worker.run_until_idle()
    assert (await world.entry("bob@example.com")).held and not (await world.entry("cy@example.com")).held
    assert await world.seats(webinar) == 1

    # Bob starts paying, the organizer removes him meanwhile: Cy gets the seat, Bob's payment is refunded.
    bob_obj, bob_order = await world.pay_offer(await world.offer_code("bob@example.com"), webinar)
    removed = await world.client.delete(f"/api/waitlist/{(await world.entry('bob@example.com')).id}",
                                        headers={"Authorization": f"Bearer {world.key}"})
    assert removed.status == 204
    await world.worker.run_until_idle()
    assert (await world.entry("cy@example.com")).held
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", bob_obj))).status == 200
    late = await world.order(bob_order.id)
    assert late.status == OrderStatus.OVERSOLD and late.refund_requested_at is not None
    assert (await world.entry("bob@example.com")).outcome == WaitlistOutcome.REMOVED
    assert (await world.entry("cy@example.com")).held and await world.seats(webinar) == 1


async def test_an_offer_running_out_as_its_payment_arrives_ends_one_way_only(world):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    refund = factories.charge(paid["payment_intent"], amount=paid["amount_total"], amount_refunded=paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    obj, order = await world.pay_offer(await world.offer_code("ann@example.com"), webinar)
    ann = await world.entry("ann@example.com")
    async with world.sessionmaker.begin() as db:
        await db.execute(update(WaitlistEntry).where(WaitlistEntry.id == ann.id)
                         .values(offered_until=utcnow() - dt.timedelta(seconds=1)))

    async def expire():
        async with world.sessionmaker.begin() as db:
            return await waitlist.expire_offer(db, ann.id, now=utcnow())

    expired, answer = await asyncio.gather(
        expire(), factories.post_event(world.client, factories.event("checkout.session.completed", obj)))
    assert answer.status == 200
    await world.worker.run_until_idle()
    ann, bob, bought = await world.entry("ann@example.com"), await world.entry("bob@example.com"), await world.order(order.id)
    # Either Ann has the seat (paid first, or just after it ran out with the seat still free) and
    # Bob waits, or the seat went to Bob and Ann's payment is refunded: never both, never neither.
    if ann.outcome == WaitlistOutcome.BOUGHT:
        assert not bob.held and bought.status == OrderStatus.PAID
    else:
        assert expired and ann.outcome == WaitlistOutcome.EXPIRED and bob.held
        assert bought.status == OrderStatus.OVERSOLD and bought.refund_requested_at is not None
    assert await world.seats(webinar) == 1


async def test_someone_waiting_for_the_webinar_is_offered_a_seat_of_whichever_type_came_free(world):
    auth = {"Authorization": f"Bearer {world.key}"}
    webinar = await factories.webinar(world.sessionmaker, world.owner, capacity=2)
    added = await world.client.post(f"/api/webinars/{webinar.id}/ticket-types", headers=auth,
                                    json={"name": "Standard", "price_amount": 3000, "capacity": 1})
    assert added.status == 201, await added.text()
    standard = (await added.json())["id"]
    async with world.sessionmaker() as db:
        default = str((await ticket_types.default_type(db, webinar.id)).id)
    limited = await world.client.patch(f"/api/ticket-types/{default}", headers=auth, json={"capacity": 1})
    assert limited.status == 200, await limited.text()
    await _buy(world, webinar, {default: 1})
    standard_paid, _ = await _buy(world, webinar, {standard: 1})
    await world.join(webinar, "ann@example.com")
    assert (await world.entry("ann@example.com")).ticket_type_id is None

    # The seat that comes free is a Standard one; the default type stays full.
    refund = factories.charge(standard_paid["payment_intent"], amount=standard_paid["amount_total"],
                              amount_refunded=standard_paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    entry = await world.entry("ann@example.com")
    assert entry.held and str(entry.ticket_type_id) == standard
    assert await world.seats(webinar) == 2

    obj, order = await world.pay_offer(await world.offer_code("ann@example.com"), webinar)
    assert order.expected_amount == 3000
    assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    async with world.sessionmaker() as db:
        [ticket] = list(await db.scalars(select(Ticket).where(Ticket.order_id == order.id)))
    assert str(ticket.ticket_type_id) == standard and ticket.status == TicketStatus.VALID
    assert (await world.entry("ann@example.com")).outcome == WaitlistOutcome.BOUGHT
    assert await world.seats(webinar) == 2


async def test_joining_again_while_in_line_mails_a_working_link_and_keeps_the_place(world):
    webinar, _ = await world.sold_out()
    first = await world.join(webinar, "ann@example.com")
    await world.join(webinar, "bob@example.com")
    async with world.sessionmaker.begin() as db:  # a while later: the resend pause is over
        await db.execute(update(WaitlistEntry).values(sent_at=utcnow() - dt.timedelta(hours=1)))
    again = await world.client.post(f"/w/{webinar.id}/waitlist", data={"email": "ann@example.com", "quantity": "1"})
    assert again.status == 202
    await world.worker.run_until_idle()
    mails = world.mails("ann@example.com", "Confirm your place")
    assert len(mails) == 2
    fresh = world.code(mails[-1])
    assert fresh != first and (await world.client.get(f"/wl/{first}")).status == 404
    page = await world.client.get(f"/wl/{fresh}")
    assert page.status == 200
    entry = await world.entry("ann@example.com")
    assert entry.confirmed_at is not None and entry.outcome is None  # still first in line


async def test_a_types_offer_ends_with_its_checkouts_and_a_closed_type_gets_none(world):
    auth = {"Authorization": f"Bearer {world.key}"}
    webinar = await factories.webinar(world.sessionmaker, world.owner, capacity=5)
    vip_end = (utcnow() + dt.timedelta(hours=2)).replace(microsecond=0)
    added = await world.client.post(f"/api/webinars/{webinar.id}/ticket-types", headers=auth, json={
        "name": "VIP", "price_amount": 9900, "capacity": 1, "sales_end": vip_end.isoformat()})
    assert added.status == 201, await added.text()
    vip = (await added.json())["id"]
    vip_paid, _ = await _buy(world, webinar, {vip: 1})
    for name in ("ann", "bob"):
        response = await world.client.post(f"/w/{webinar.id}/waitlist", data={
            "email": f"{name}@example.com", "quantity": "1", "ticket_type_id": vip})
        assert response.status == 202, await response.text()
        await world.worker.run_until_idle()
        code = world.code(world.mails(f"{name}@example.com", "Confirm your place")[0])
        assert (await world.client.get(f"/wl/{code}/confirm")).status == 200

    refund = factories.charge(vip_paid["payment_intent"], amount=vip_paid["amount_total"],
                              amount_refunded=vip_paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    ann = await world.entry("ann@example.com")
    # Twelve hours by the webinar's setting, cut to the last moment a VIP checkout can start.
    assert ann.held and ann.offered_until == vip_end - MIN_CHECKOUT_WINDOW

    async with world.sessionmaker.begin() as db:  # VIP sales have closed since
        await db.execute(update(TicketType).where(TicketType.id == uuid.UUID(vip))
                         .values(sales_end=utcnow() - dt.timedelta(minutes=1)))
    left = await world.client.post(f"/wl/{await world.offer_code('ann@example.com')}/leave", data={})
    assert left.status in (200, 303), await left.text()
    await world.worker.run_until_idle()
    assert not (await world.entry("bob@example.com")).held
    assert world.mails("bob@example.com", "A seat is free") == []


@pytest.mark.parametrize("newer_first", [True, False])
async def test_paying_both_checkouts_of_an_offer_buys_once_even_with_seats_to_spare(world, newer_first):
    webinar, [paid] = await world.sold_out()
    await world.join(webinar, "ann@example.com")
    refund = factories.charge(paid["payment_intent"], amount=paid["amount_total"], amount_refunded=paid["amount_total"])
    assert (await factories.post_event(world.client, factories.event("charge.refunded", refund))).status == 200
    await world.worker.run_until_idle()
    code = await world.offer_code("ann@example.com")
    first, first_order = await world.pay_offer(code, webinar)
    second, second_order = await world.pay_offer(code, webinar)
    async with world.sessionmaker.begin() as db:  # seats to spare: the second could take them
        await db.execute(update(Webinar).where(Webinar.id == webinar.id).values(capacity=5))

    (bought, bought_order), (other, other_order) = (
        ((second, second_order), (first, first_order)) if newer_first else ((first, first_order), (second, second_order)))
    for obj in (bought, other):
        assert (await factories.post_event(world.client, factories.event("checkout.session.completed", obj))).status == 200
    assert (await world.order(bought_order.id)).status == OrderStatus.PAID
    late = await world.order(other_order.id)
    assert late.status == OrderStatus.OVERSOLD and late.refund_requested_at is not None
    entry = await world.entry("ann@example.com")
    assert entry.outcome == WaitlistOutcome.BOUGHT and entry.order_id == bought_order.id
    assert await world.seats(webinar) == 1
