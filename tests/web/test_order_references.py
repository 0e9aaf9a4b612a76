"""The order reference people read aloud (`K7Q-M4X-RT2`) in the organizer API's tickets and
orders and in both CSV exports, the same one the console's attendee search finds."""

from __future__ import annotations

import csv
import io

from tests import factories
from tests.lifecycle.conftest import order_for, pay
from tests.org.conftest import sign_in
from tests.web.test_api import auth
from ticketing.orders.references import order_reference, parse_reference


async def test_tickets_orders_and_csv_carry_the_orders_reference(client, sessionmaker):
    ada, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, ada)
    first = await order_for(sessionmaker, (await pay(client, webinar, email="bea@example.com", quantity=2))["id"])
    second = await order_for(sessionmaker, (await pay(client, webinar, email="cy@example.com"))["id"])
    expected = {str(first.id): order_reference(first.id), str(second.id): order_reference(second.id)}
    assert len(set(expected.values())) == 2 and all(parse_reference(r) is not None for r in expected.values())

    tickets = (await (await client.get(f"/api/webinars/{webinar.id}/tickets", headers=auth(key))).json())["tickets"]
    assert sorted((t["order_id"], t["reference"]) for t in tickets) == sorted(
        [(str(first.id), expected[str(first.id)])] * 2 + [(str(second.id), expected[str(second.id)])])

    orders = (await (await client.get(f"/api/webinars/{webinar.id}/orders", headers=auth(key))).json())["orders"]
    assert {o["id"]: o["reference"] for o in orders} == expected

    # One ticket's own answers (here a revoke) name it too.
    revoked = await client.post(f"/api/tickets/{tickets[0]['id']}/revoke", headers=auth(key))
    assert (await revoked.json())["reference"] == expected[tickets[0]["order_id"]]

    # Both CSV exports: the reference is the last column, after every earlier one.
    api_csv = await client.get(f"/api/webinars/{webinar.id}/tickets", headers={**auth(key), "Accept": "text/csv"})
    await sign_in(client, sessionmaker, "ada@example.com")
    console_csv = await client.get(f"/org/webinars/{webinar.id}/attendees.csv")
    for response in (api_csv, console_csv):
        assert response.status == 200
        header, *rows = list(csv.reader(io.StringIO(await response.text())))
        assert header[-3:] == ["ticket_type_id", "ticket_type", "reference"]
        assert sorted((row[1], row[-1]) for row in rows) == sorted((t["order_id"], t["reference"]) for t in tickets)
