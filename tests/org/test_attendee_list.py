"""The console's attendee list over HTTP: search by name, email or order reference, filters
with their counts, sorting, pages, seat numbers and "bought by" for a seat given away."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import select, update

from tests import factories
from tests.seats import join_codes, order_codes
from ticketing.db import utcnow
from ticketing.db.models import Order, Ticket, TicketDelivery
from ticketing.lifecycle import tickets as ticket_lifecycle
from ticketing.orders import seats
from ticketing.orders.attendees import PAGE_SIZE
from ticketing.orders.references import id_range, order_reference, parse_reference

ROW = re.compile(r"<tr>\s*<td data-label=\"[^\"]+\"><code class=\"reference\">([0-9A-Z-]+)</code>(.*?)</tr>", re.S)


def test_a_reference_reads_back_whatever_the_typing():
    order_id = uuid.uuid4()
    reference = order_reference(order_id)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{3}-[0-9A-HJKMNP-TV-Z]{3}-[0-9A-HJKMNP-TV-Z]{3}", reference)
    low, high = id_range(reference)
    assert low <= order_id <= high
    assert high.int - low.int == 2 ** 83 - 1
    spoken = reference.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert parse_reference(spoken) == parse_reference(reference)
    for wrong in ("", "ABC-DEF-GH", "ABC-DEF-GHJK", "ABU-DEF-GHJ", "bea@example.com"):
        assert parse_reference(wrong) is None, wrong


@pytest.fixture
async def webinar_with_buyers(client, sessionmaker, signed_in):
    """Ada's webinar (starting in five minutes, so links open) with 40 seats bought by Bea, one
    of which she gave to Dora, 20 bought by Erin, one by Carl, one revoked, one whose mail failed, and one
    link opened by its holder."""
    ada, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    starts = (utcnow() + dt.timedelta(minutes=5)).replace(microsecond=0)
    webinar = await factories.webinar(sessionmaker, ada, capacity=100, starts_at=starts.isoformat(),
                                      ends_at=(starts + dt.timedelta(hours=1)).isoformat())
    for email, quantity in (("bea@example.com", 40), ("erin@example.com", 20), ("carl@example.com", 1)):
        response = await factories.post_event(client, factories.event(
            "checkout.session.completed", factories.checkout_session(webinar, quantity=quantity, email=email)))
        assert response.status == 200
    async with sessionmaker() as session:
        orders = {o.email: o for o in await session.scalars(select(Order).where(Order.webinar_id == webinar.id))}
    codes = await order_codes(sessionmaker)
    bea, carl = orders["bea@example.com"], orders["carl@example.com"]
    async with sessionmaker.begin() as session:
        await seats.assign_seat(session, codes[bea.id], 1, name="Dora Delta", email="dora@example.com")
    async with sessionmaker() as session:
        tickets = {(t.order_id, t.seq): t for t in await session.scalars(select(Ticket))}
    async with sessionmaker.begin() as session:
        await ticket_lifecycle.revoke_ticket(session, ada, tickets[(bea.id, 2)].id)
        # What the mail jobs record when the server refuses the address for good.
        await session.execute(update(Ticket).where(Ticket.id == tickets[(bea.id, 3)].id).values(
            delivery_status=TicketDelivery.FAILED, delivery_error="550 5.1.1 no such mailbox"))
    opened = (await join_codes(sessionmaker, webinar_id=webinar.id))[tickets[(bea.id, 4)].id]
    assert (await client.get(f"/j/{opened}", allow_redirects=False)).status == 302
    # On SQLite the join is written within a second, in a batch.
    for _ in range(50):
        async with sessionmaker() as session:
            if await session.scalar(select(Ticket.first_joined_at).where(Ticket.id == tickets[(bea.id, 4)].id)):
                break
        await asyncio.sleep(0.1)
    await signed_in(client, "ada@example.com")
    return webinar, bea, carl


async def _rows(client, webinar, **query: str) -> tuple[str, list[tuple[str, str]]]:
    response = await client.get(f"/org/webinars/{webinar.id}", params=query)
    assert response.status == 200
    page = await response.text()
    section = page[page.index('id="attendees"'):]
    return page, [(ref, re.sub(r"<[^>]+>", " ", rest)) for ref, rest in ROW.findall(section)]


async def test_the_list_pages_filters_searches_and_sorts(client, webinar_with_buyers):
    webinar, bea, carl = webinar_with_buyers
    page, rows = await _rows(client, webinar)
    assert len(rows) == PAGE_SIZE
    assert "61 tickets match" in page and "page 1 of 2" in page
    assert rows[0][0] == order_reference(bea.id) and "seat 1" in rows[0][1]
    assert f'href="/org/webinars/{webinar.id}?q=&amp;state=&amp;sort=bought&amp;dir=asc&amp;page=2#attendees"' in page
    # The menu of actions is one <details> per row, whose links are plain GETs.
    assert page.count('<details class="row-menu">') == PAGE_SIZE - 1  # the revoked ticket has none

    _, rest = await _rows(client, webinar, page="2")
    assert len(rest) == 61 - PAGE_SIZE and rest[-1][0] == order_reference(carl.id)
    _, past_the_end = await _rows(client, webinar, page="99")
    assert past_the_end == rest

    # Given away: Dora holds seat 2, and the list says who bought it.
    _, found = await _rows(client, webinar, q="dora")
    assert len(found) == 1 and "seat 2" in found[0][1] and "bought by bea@example.com" in found[0][1]
    _, found = await _rows(client, webinar, q="Carl@Example")
    assert [r[0] for r in found] == [order_reference(carl.id)] and "bought by" not in found[0][1]
    # An order reference as read over the phone: lower case, spaces, O for zero.
    spoken = order_reference(carl.id).lower().replace("-", " ").replace("0", "o")
    _, found = await _rows(client, webinar, q=spoken)
    assert [r[0] for r in found] == [order_reference(carl.id)]
    # Searching the buyer's address finds every seat of the order, given away or not.
    page, found = await _rows(client, webinar, q="bea@", state="valid")
    assert len(found) == 39 and "39 tickets match (of 61)" in page

    page, found = await _rows(client, webinar, state="revoked")
    assert len(found) == 1 and "seat 3" in found[0][1] and "revoked" in found[0][1]
    assert '<option value="revoked" selected>Revoked (1)</option>' in page
    assert "Valid (60)" in page and "Mail failed (1)" in page and "Attended (1)" in page
    _, found = await _rows(client, webinar, state="mail_failed")
    assert len(found) == 1 and "seat 4" in found[0][1] and "550 5.1.1 no such mailbox" in found[0][1]
    _, found = await _rows(client, webinar, state="attended")
    assert len(found) == 1 and "seat 5" in found[0][1]

    _, found = await _rows(client, webinar, sort="email", dir="desc")
    assert [e for e in ("erin", "dora", "carl", "bea") if any(f"{e}@example.com" in r[1] for r in found[:22])] == [
        "erin", "dora", "carl", "bea"]
    assert "erin@" in found[19][1] and "dora@" in found[20][1] and "carl@" in found[21][1]
    _, found = await _rows(client, webinar, sort="state")
    assert "seat 4" in found[0][1] and "failed" in found[0][1]
    _, found = await _rows(client, webinar, sort="state", dir="desc")
    assert "seat 3" in found[0][1] and "revoked" in found[0][1]

    # Nonsense in the query string is ignored, never an error.
    _, found = await _rows(client, webinar, page="x", state="nope", sort="'; drop", dir="up", q="%_\\")
    assert found == []
    _, found = await _rows(client, webinar, page="-3", state="nope", sort="nope")
    assert len(found) == PAGE_SIZE


async def test_the_list_speaks_the_browsers_language(client, webinar_with_buyers):
    webinar, bea, _ = webinar_with_buyers
    response = await client.get(f"/org/webinars/{webinar.id}", params={"q": "dora"},
                                headers={"Accept-Language": "fr-CH, de;q=0.9, en;q=0.8"})
    page = await response.text()
    assert '<html lang="de">' in page
    assert "Teilnehmende" in page and "1 Ticket passt (von 61)" in page
    assert "gekauft von bea@example.com" in page and "Platz 2" in page
    # Dates by Babel in German, the day of the month without a leading zero.
    local = webinar.starts_at.astimezone(dt.UTC)
    assert f"{local.day}. " in page and re.search(r"(Montag|Dienstag|Mittwoch|Donnerstag|Freitag|Samstag|Sonntag), ",
                                                   page)
