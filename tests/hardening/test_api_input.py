"""Input the databases cannot hold (NUL bytes, lone surrogates, integers beyond 64 bits) is
refused with 422 where it arrives, JSON or form, on both databases; a non-UTF-8 Authorization
header is a 401, never a 500."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from tests import factories
from tests.hardening.raw_http import raw_request
from ticketing.db.models import Order, Organizer, Webinar


@pytest.fixture
async def key(sessionmaker) -> str:
    _, api_key = await factories.organizer(sessionmaker)
    return api_key


async def _count(sessionmaker, model) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model))


def _body(**overrides) -> bytes:
    # json.dumps writes a lone surrogate as the escape \ud800, as an attacker's client would.
    return json.dumps(factories.webinar_input(**overrides)).encode()


BAD_INPUT = [
    ("title", {"title": "Widgets \ud800"}),
    ("title", {"title": "Widgets \x00"}),
    ("description", {"description": "line one\nline \udfff two"}),
    ("room", {"room": "room-\x00"}),
    ("timezone", {"timezone": "Europe/\ud83d"}),
    ("price_amount", {"price_amount": 2**64}),
    ("capacity", {"capacity": -(2**63) - 1}),
    ("extra.note", {"extra": {"note": "\x00"}}),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_INPUT, ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_INPUT)])
async def test_unstorable_values_in_api_json_are_422_and_store_nothing(client, sessionmaker, key, field, overrides):
    response = await client.post("/api/webinars", data=_body(**overrides),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status == 422, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "invalid" and error["field"] == field
    assert await _count(sessionmaker, Webinar) == 0


async def test_a_patch_with_a_lone_surrogate_is_422_and_changes_nothing(client, sessionmaker, key):
    created = await client.post("/api/webinars", data=_body(), headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    webinar = await created.json()
    response = await client.patch(f"/api/webinars/{webinar['id']}", data=b'{"title": "x\\ud800"}', headers={
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status == 422, await response.text()
    assert (await (await client.get(f"/api/webinars/{webinar['id']}", headers={
        "Authorization": f"Bearer {key}"})).json())["title"] == webinar["title"]


async def test_a_json_body_nested_too_deeply_is_400_or_422_not_500(client, key):
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50 + b"1" + b"}" * 50):
        response = await client.post("/api/webinars", data=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        assert response.status in (400, 422), await response.text()
        assert (await response.json())["error"]["code"] in ("bad_request", "invalid")


@pytest.mark.parametrize("email", ["bea\x00@example.com", "bea\udc80@example.com"])
async def test_checkout_json_refuses_unstorable_text(client, sessionmaker, email):
    webinar = await factories.webinar(sessionmaker)
    response = await client.post(f"/w/{webinar.id}/checkout", data=json.dumps({"quantity": 1, "email": email}),
                                 headers={"Content-Type": "application/json"}, allow_redirects=False)
    assert response.status == 422, await response.text()
    huge = await client.post(f"/w/{webinar.id}/checkout", data=json.dumps({"quantity": 2**70}),
                             headers={"Content-Type": "application/json"}, allow_redirects=False)
    assert huge.status == 422, await huge.text()
    assert await _count(sessionmaker, Order) == 0


# (Invalid UTF-8 in a form becomes U+FFFD when aiohttp decodes it: storable, so not refused here.)
@pytest.mark.parametrize("email", [b"bea%00%40example.com", b"bea%01%40example.com"])
async def test_checkout_form_refuses_unstorable_text(client, sessionmaker, email):
    webinar = await factories.webinar(sessionmaker)
    body = b"quantity=1&email=" + email
    response = await raw_request(client, f"POST /w/{webinar.id}/checkout HTTP/1.1\r\nHost: x\r\n".encode()
                                 + b"Content-Type: application/x-www-form-urlencoded\r\n"
                                 + f"Content-Length: {len(body)}".encode(), body)
    assert response.status == 422, response.body
    assert response.headers["content-type"].startswith("text/html")
    assert await _count(sessionmaker, Order) == 0


async def test_cli_refuses_a_name_that_is_not_utf8(sessionmaker, cli):
    result = await cli("organizer", "create", "--name", b"Ada \xff", "--email", "ada@example.com")
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "name" in result.stderr
    assert await _count(sessionmaker, Organizer) == 0


# --- the Authorization header ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"Bearer tk_\xff\xfe", b"Bearer \xc3\x28", b"\xff\xff \xff", b"Bearer tk_ok\x80"])
async def test_a_non_utf8_authorization_header_is_401_json(client, key, value):
    response = await raw_request(client, b"GET /api/webinars HTTP/1.1\r\nHost: x\r\nAuthorization: " + value)
    assert response.status == 401, response.body
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "unauthorized"
    assert "WWW-Authenticate".lower() in response.headers


async def test_the_right_key_still_works_next_to_a_bad_one(client, key):
    good = await raw_request(client, b"GET /api/webinars HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode())
    assert good.status == 200 and good.json() == {"webinars": []}


async def test_a_non_utf8_stripe_signature_is_400_and_stores_nothing(client, sessionmaker):
    from ticketing.db.models import StripeEvent

    body = b'{"id": "evt_1", "type": "customer.created", "data": {"object": {}}}'
    response = await raw_request(client, b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                 + f"Content-Length: {len(body)}\r\n".encode() + b"Stripe-Signature: t=1,v1=\xff\xfe",
                                 body)
    assert response.status == 400, response.body
    assert response.json()["error"]["code"] == "bad_signature"
    assert await _count(sessionmaker, StripeEvent) == 0
