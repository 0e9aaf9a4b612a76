"""The organizer API under /api/webinars: what it answers, every 4xx, and nothing stored after one."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import pytest
from sqlalchemy import func, select

from tests import factories
from ticketing.db import utcnow
from ticketing.db.models import Job, Webinar, WebinarStatus


@pytest.fixture
async def key(sessionmaker) -> str:
    _, api_key = await factories.organizer(sessionmaker)
    return api_key


def auth(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def _webinar_count(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Webinar))


async def _create(client, api_key, **overrides):
    response = await client.post("/api/webinars", json=factories.webinar_input(**overrides), headers=auth(api_key))
    assert response.status == 201, await response.text()
    return await response.json()


async def _assert_error(response, status: int, field: str | None = None) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    error = (await response.json())["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in error["message"]
    if field is not None:
        assert error.get("field") == field, error
    return error


# --- creating, reading, listing, editing -----------------------------------------------------


async def test_create_answers_201_with_the_webinar(client, settings, key, sessionmaker):
    data = factories.webinar_input(room="Widgets-101", starts_at="2031-03-01T18:00:00+01:00",
                                   ends_at="2031-03-01T19:30:00+01:00", price_amount=1999, currency="eur")
    response = await client.post("/api/webinars", json=data, headers=auth(key))
    assert response.status == 201, await response.text()
    body = await response.json()
    assert response.headers["Location"] == f"/api/webinars/{body['id']}"
    uuid.UUID(body["id"])
    assert body["room"] == "widgets-101"  # stored lower-case
    assert body["public_url"] == f"{settings.base_url}/w/{body['id']}"
    assert body["title"] == data["title"] and body["description"] == data["description"]
    assert body["starts_at"] == "2031-03-01T17:00:00Z" and body["ends_at"] == "2031-03-01T18:30:00Z"
    assert body["timezone"] == "+01:00"
    assert (body["price_amount"], body["currency"], body["capacity"]) == (1999, "EUR", 10)
    assert (body["tickets_sold"], body["seats_left"], body["status"]) == (0, 10, "scheduled")

    got = await client.get(f"/api/webinars/{body['id']}", headers=auth(key))
    assert got.status == 200
    assert await got.json() == body


async def test_room_is_generated_when_omitted_and_unique_among_live_webinars(client, key, sessionmaker):
    first = await _create(client, key)
    second = await _create(client, key)
    for body in (first, second):
        assert body["room"] == body["room"].lower() and 2 <= len(body["room"]) <= 63
    assert first["room"] != second["room"]

    await _create(client, key, room="town-hall")
    taken = await client.post("/api/webinars", json=factories.webinar_input(room="TOWN-HALL"), headers=auth(key))
    await _assert_error(taken, 409, field="room")
    assert await _webinar_count(sessionmaker) == 3


async def test_room_of_a_cancelled_webinar_can_be_used_again(client, key, sessionmaker):
    old = await _create(client, key, room="reused")
    async with sessionmaker.begin() as session:
        (await session.get(Webinar, uuid.UUID(old["id"]))).status = WebinarStatus.CANCELLED
    assert (await _create(client, key, room="reused"))["room"] == "reused"


async def test_list_shows_only_own_webinars_with_tickets_sold(client, key, sessionmaker):
    mine = [await _create(client, key, title=f"Mine {i}") for i in range(2)]
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    await _create(client, other_key, title="Theirs")

    webinar = await factories.webinar(sessionmaker)  # a third organizer's
    response = await client.get("/api/webinars", headers=auth(key))
    assert response.status == 200
    listed = (await response.json())["webinars"]
    assert {w["id"] for w in listed} == {w["id"] for w in mine}
    assert all("tickets_sold" in w for w in listed)

    async with sessionmaker.begin() as session:
        (await session.get(Webinar, uuid.UUID(mine[0]["id"]))).seats_taken = 4
    listed = (await (await client.get("/api/webinars", headers=auth(key))).json())["webinars"]
    sold = {w["id"]: (w["tickets_sold"], w["seats_left"]) for w in listed}
    assert sold[mine[0]["id"]] == (4, 6) and sold[mine[1]["id"]] == (0, 10)
    assert str(webinar.id) not in sold


async def test_patch_edits_fields_and_a_time_change_queues_update_mails(client, key, sessionmaker):
    created = await _create(client, key)
    response = await client.patch(f"/api/webinars/{created['id']}", json={"title": "New title", "capacity": 20},
                                  headers=auth(key))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["title"], body["capacity"], body["starts_at"]) == ("New title", 20, created["starts_at"])
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "webinar.time_changed")) == 0

    later = dt.datetime.fromisoformat(created["starts_at"]) + dt.timedelta(days=1)
    moved = await client.patch(f"/api/webinars/{created['id']}", headers=auth(key), json={
        "starts_at": later.isoformat(), "ends_at": (later + dt.timedelta(hours=2)).isoformat()})
    assert moved.status == 200, await moved.text()
    assert (await moved.json())["starts_at"] == later.isoformat().replace("+00:00", "Z")
    async with sessionmaker() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "webinar.time_changed")))
    assert [j.payload["webinar_id"] for j in jobs] == [created["id"]]


async def test_patch_cannot_shrink_capacity_below_sold_or_break_the_rules(client, key, sessionmaker):
    created = await _create(client, key, capacity=10)
    async with sessionmaker.begin() as session:
        (await session.get(Webinar, uuid.UUID(created["id"]))).seats_taken = 5
    path = f"/api/webinars/{created['id']}"
    await _assert_error(await client.patch(path, json={"capacity": 4}, headers=auth(key)), 422, field="capacity")
    await _assert_error(await client.patch(path, json={"ends_at": created["starts_at"]}, headers=auth(key)), 422,
                        field="ends_at")
    await _assert_error(await client.patch(path, json={"price_amount": -1}, headers=auth(key)), 422,
                        field="price_amount")
    unchanged = await (await client.get(path, headers=auth(key))).json()
    assert unchanged["capacity"] == 10 and unchanged["ends_at"] == created["ends_at"]


async def test_tickets_as_json_and_csv(client, key, sessionmaker):
    created = await _create(client, key)
    async with sessionmaker() as session:
        webinar = await session.get(Webinar, uuid.UUID(created["id"]))
    obj = factories.checkout_session(webinar, quantity=2, email="=cmd@example.com")
    delivered = await factories.post_event(client, factories.event("checkout.session.completed", obj))
    assert (await delivered.json())["outcome"] == "order_paid"

    response = await client.get(f"/api/webinars/{created['id']}/tickets", headers=auth(key))
    assert response.status == 200
    tickets = (await response.json())["tickets"]
    assert len(tickets) == 2
    assert {t["email"] for t in tickets} == {"=cmd@example.com"} and {t["status"] for t in tickets} == {"valid"}
    assert all("code_hash" not in t for t in tickets)

    as_csv = await client.get(f"/api/webinars/{created['id']}/tickets", headers={**auth(key), "Accept": "text/csv"})
    assert as_csv.status == 200 and as_csv.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await as_csv.text())))
    assert [r["id"] for r in rows] == [t["id"] for t in tickets]
    assert rows[0]["email"] == "'=cmd@example.com"  # a spreadsheet must not run it as a formula

    listed = (await (await client.get(f"/api/webinars/{created['id']}", headers=auth(key))).json())
    assert listed["tickets_sold"] == 2


# --- every 4xx ----------------------------------------------------------------------------------


async def test_401_without_or_with_a_bad_key(client, key, sessionmaker):
    created = await _create(client, key)
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Bearer tk_wrong"},
                    {"Authorization": f"Basic {key}"}, {"Authorization": key}):
        for method, path in (("GET", "/api/webinars"), ("POST", "/api/webinars"),
                             ("GET", f"/api/webinars/{created['id']}"), ("PATCH", f"/api/webinars/{created['id']}"),
                             ("GET", f"/api/webinars/{created['id']}/tickets")):
            response = await client.request(method, path, json=factories.webinar_input(), headers=headers)
            await _assert_error(response, 401)
            assert "WWW-Authenticate" in response.headers
    assert await _webinar_count(sessionmaker) == 1


async def test_403_on_another_organizers_webinar(client, key, sessionmaker):
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    theirs = await _create(client, other_key, title="Theirs")
    for method, path, body in (("GET", f"/api/webinars/{theirs['id']}", None),
                               ("PATCH", f"/api/webinars/{theirs['id']}", {"title": "Mine now"}),
                               ("GET", f"/api/webinars/{theirs['id']}/tickets", None)):
        await _assert_error(await client.request(method, path, json=body, headers=auth(key)), 403)
    still = await (await client.get(f"/api/webinars/{theirs['id']}", headers=auth(other_key))).json()
    assert still["title"] == "Theirs"


@pytest.mark.parametrize("webinar_id", ["5f0c2a7e-3b1d-4c8e-9a6f-0d2b4e6a8c1f", "garbage", "1", "00000000-0000-0000-0000-00000000000g"])
async def test_404_on_unknown_or_garbage_ids(client, key, webinar_id):
    for method, path in (("GET", f"/api/webinars/{webinar_id}"), ("PATCH", f"/api/webinars/{webinar_id}"),
                         ("GET", f"/api/webinars/{webinar_id}/tickets")):
        await _assert_error(await client.request(method, path, json={"title": "x"}, headers=auth(key)), 404)
    await _assert_error(await client.get("/api/nothing-here", headers=auth(key)), 404)


async def test_400_on_malformed_json(client, key, sessionmaker):
    created = await _create(client, key)
    headers = {**auth(key), "Content-Type": "application/json"}
    for body in (b'{"title": ', b"", b"[1, 2]", b'"a string"', b"null", b"\xff\xfe"):
        await _assert_error(await client.post("/api/webinars", data=body, headers=headers), 400)
        await _assert_error(await client.patch(f"/api/webinars/{created['id']}", data=body, headers=headers), 400)
    assert await _webinar_count(sessionmaker) == 1


async def test_413_on_a_body_over_one_mebibyte(client, key, sessionmaker):
    body = json.dumps(factories.webinar_input(description="x" * (1024 * 1024))).encode()
    response = await client.post("/api/webinars", data=io.BytesIO(body),
                                 headers={**auth(key), "Content-Type": "application/json"})
    await _assert_error(response, 413)
    assert await _webinar_count(sessionmaker) == 0


async def test_415_when_not_json(client, key, sessionmaker):
    data = json.dumps(factories.webinar_input())
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = auth(key) | ({"Content-Type": content_type} if content_type else {})
        await _assert_error(await client.post("/api/webinars", data=data.encode(), headers=headers), 415)
    await _assert_error(await client.post("/api/webinars", data={"title": "form"}, headers=auth(key)), 415)
    assert await _webinar_count(sessionmaker) == 0


def _past(**delta) -> str:
    return (utcnow() - dt.timedelta(**delta)).isoformat()


INVALID = [
    ("ends_at", {"ends_at": None}, "same as start"),
    ("ends_at", {"starts_at": _past(hours=3), "ends_at": _past(hours=1)}, "in the past"),
    ("ends_at", {"starts_at": "2031-01-01T10:00:00+00:00", "ends_at": "2031-01-01T09:00:00+00:00"}, "before start"),
    ("price_amount", {"price_amount": -1}, "negative"),
    ("price_amount", {"price_amount": 12.5}, "not whole"),
    ("price_amount", {"price_amount": "2500"}, "a string"),
    ("price_amount", {"price_amount": True}, "a boolean"),
    ("currency", {"currency": "ZZZ"}, "unknown"),
    ("currency", {"currency": "euro"}, "too long"),
    ("currency", {"currency": 978}, "a number"),
    ("room", {"room": "a"}, "too short"),
    ("room", {"room": "-starts-with-dash"}, "bad start"),
    ("room", {"room": "has space"}, "space"),
    ("room", {"room": "ümlaut"}, "non-ascii"),
    ("room", {"room": "x" * 64}, "too long"),
    ("room", {"room": "a/b"}, "slash"),
    ("room", {"room": ["list"]}, "a list"),
    ("title", {"title": ""}, "empty"),
    ("title", {"title": 5}, "a number"),
    ("title", {"title": "t" * 201}, "too long"),
    ("starts_at", {"starts_at": "tomorrow"}, "not ISO"),
    ("starts_at", {"starts_at": "2031-01-01T10:00:00"}, "no offset"),
    ("starts_at", {"starts_at": 1893456000}, "a number"),
    ("capacity", {"capacity": 0}, "zero"),
    ("capacity", {"capacity": "ten"}, "a string"),
    ("description", {"description": {"a": 1}}, "an object"),
    ("timezone", {"timezone": "Mars/Olympus"}, "unknown zone"),
    ("starts_at", {"starts_at": "0001-01-01T00:00:00+14:00"}, "before year one in UTC"),
    ("ends_at", {"ends_at": "9999-12-31T23:59:59-14:00"}, "after the last year in UTC"),
    ("ends_at", {"ends_at": "9999-12-31T23:59:59+00:00"}, "too far ahead for a window"),
    ("title", {"title": "nul\x00byte"}, "a NUL"),
    ("title", {"title": "two\nlines"}, "a line break"),
    ("description", {"description": "nul\x00byte"}, "a NUL"),
    ("room", {"room": "room\x00"}, "a NUL"),
]


@pytest.mark.parametrize(("field", "change", "why"), INVALID, ids=[f"{f}-{w}" for f, _, w in INVALID])
async def test_422_names_the_invalid_field_and_stores_nothing(client, key, sessionmaker, field, change, why):
    data = factories.webinar_input()
    if change.get("ends_at", "") is None:
        change = {"ends_at": data["starts_at"]}
    data.update(change)
    await _assert_error(await client.post("/api/webinars", json=data, headers=auth(key)), 422, field=field)
    assert await _webinar_count(sessionmaker) == 0


async def test_patch_refuses_out_of_range_times_and_changes_nothing(client, key):
    created = await _create(client, key)
    for change in ({"starts_at": "0001-01-01T00:00:00+14:00"}, {"ends_at": "9999-12-31T23:59:59-14:00"}):
        response = await client.patch(f"/api/webinars/{created['id']}", json=change, headers=auth(key))
        await _assert_error(response, 422, field=next(iter(change)))
    after = await (await client.get(f"/api/webinars/{created['id']}", headers=auth(key))).json()
    assert (after["starts_at"], after["ends_at"]) == (created["starts_at"], created["ends_at"])


async def test_a_description_keeps_its_line_breaks(client, key):
    assert (await _create(client, key, description="one\ntwo"))["description"] == "one\ntwo"


@pytest.mark.parametrize("missing", ["title", "starts_at", "ends_at", "price_amount", "currency"])
async def test_422_on_each_missing_required_field(client, key, sessionmaker, missing):
    data = factories.webinar_input()
    del data[missing]
    await _assert_error(await client.post("/api/webinars", json=data, headers=auth(key)), 422, field=missing)
    assert await _webinar_count(sessionmaker) == 0


async def test_optional_fields_may_be_left_out(client, key):
    data = factories.webinar_input()
    for name in ("capacity", "description"):
        del data[name]
    response = await client.post("/api/webinars", json=data, headers=auth(key))
    assert response.status == 201
    body = await response.json()
    assert body["capacity"] is None and body["seats_left"] is None and body["description"] == ""


async def test_free_webinar_and_zero_decimal_currency(client, key):
    assert (await _create(client, key, price_amount=0))["price_amount"] == 0
    assert (await _create(client, key, price_amount=500, currency="jpy"))["currency"] == "JPY"


async def test_405_is_json_too(client, key):
    response = await client.delete("/api/webinars", headers=auth(key))
    await _assert_error(response, 405)


async def test_orders_show_the_organizer_what_was_flagged_and_why(client, key, sessionmaker):
    created = await _create(client, key, price_amount=1000, capacity=1)
    async with sessionmaker() as db:
        webinar = await db.get(Webinar, uuid.UUID(created["id"]))
    underpaid = factories.checkout_session(webinar, amount_total=999, email="cheap@example.com")
    paid = factories.checkout_session(webinar, email="bea@example.com")
    late = factories.checkout_session(webinar, email="late@example.com")
    for session in (underpaid, paid, late):
        assert (await factories.post_event(client, factories.event("checkout.session.completed", session))).status == 200

    response = await client.get(f"/api/webinars/{created['id']}/orders", headers=auth(key))
    assert response.status == 200
    orders = {o["email"]: o for o in (await response.json())["orders"]}
    assert orders["cheap@example.com"]["status"] == "flagged"
    assert "999" in orders["cheap@example.com"]["problem"] and "1000" in orders["cheap@example.com"]["problem"]
    assert orders["bea@example.com"]["status"] == "paid" and orders["bea@example.com"]["problem"] is None
    assert orders["late@example.com"]["status"] == "oversold" and "sold out" in orders["late@example.com"]["problem"]
    assert orders["cheap@example.com"]["currency"] == "EUR" and orders["cheap@example.com"]["amount_total"] == 999

    flagged = await client.get(f"/api/webinars/{created['id']}/orders?status=flagged", headers=auth(key))
    assert [o["email"] for o in (await flagged.json())["orders"]] == ["cheap@example.com"]
    await _assert_error(await client.get(f"/api/webinars/{created['id']}/orders?status=nope", headers=auth(key)),
                        422, field="status")
    _, other_key = await factories.organizer(sessionmaker, email="other@example.com")
    await _assert_error(await client.get(f"/api/webinars/{created['id']}/orders", headers=auth(other_key)), 403)
