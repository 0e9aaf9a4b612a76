"""GET and PATCH /api/organizer: the profile buyers see (name, contact address, legal links)."""

from __future__ import annotations

import pytest

from tests import factories
from tests.web.test_api import _assert_error, auth
from ticketing.accounts import signin
from ticketing.db.models import Organizer


async def test_get_shows_the_profile_with_the_sign_in_address_as_reply_to(client, sessionmaker):
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    response = await client.get("/api/organizer", headers=auth(key))
    assert response.status == 200
    body = await response.json()
    assert body["id"] == str(organizer.id)
    assert (body["name"], body["email"], body["contact_email"], body["reply_to"]) == (
        "Ada", "ada@example.com", None, "ada@example.com")
    assert (body["imprint_url"], body["terms_url"]) == (None, None)


async def test_patch_changes_what_is_given_and_keeps_the_rest(client, sessionmaker):
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    response = await client.patch("/api/organizer", headers=auth(key), json={
        "name": "Widget Academy", "contact_email": " help@widgets.example ",
        "imprint_url": "https://widgets.example/imprint"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["name"] == "Widget Academy"
    assert body["contact_email"] == body["reply_to"] == "help@widgets.example"
    assert body["imprint_url"] == "https://widgets.example/imprint"
    assert body["terms_url"] is None

    response = await client.patch("/api/organizer", headers=auth(key), json={"terms_url": "http://widgets.example/terms",
                                                                             "imprint_url": ""})
    body = await response.json()
    assert (body["name"], body["terms_url"], body["imprint_url"]) == (
        "Widget Academy", "http://widgets.example/terms", None)
    async with sessionmaker() as session:
        stored = await session.get(Organizer, organizer.id)
    assert (stored.name, stored.contact_email, stored.terms_url, stored.imprint_url) == (
        "Widget Academy", "help@widgets.example", "http://widgets.example/terms", None)
    assert stored.email == "ada@example.com"


@pytest.mark.parametrize("data, field", [
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "bad\x00name"}, "name"),
    ({"name": 5}, "name"),
    ({"contact_email": "not an address"}, "contact_email"),
    ({"contact_email": 7}, "contact_email"),
    ({"imprint_url": "javascript:alert(1)"}, "imprint_url"),
    ({"terms_url": "ftp://widgets.example/terms"}, "terms_url"),
    ({"terms_url": "https://"}, "terms_url"),
    ({"terms_url": ["https://widgets.example"]}, "terms_url"),
    # Hosts urlsplit cannot read (a bracket left open, a bracketed name that is no IP address).
    ({"imprint_url": "http://[::1/imprint"}, "imprint_url"),
    ({"terms_url": "https://[widgets]/terms"}, "terms_url"),
    ({"email": "not an address"}, "email"),
    ({"email": None}, "email"),
    ({"owner": "x"}, "owner"),
])
async def test_patch_refuses_bad_values_with_422_and_changes_nothing(client, sessionmaker, data, field):
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    response = await client.patch("/api/organizer", headers=auth(key), json={"name": "Changed", **data}
                                  if field != "name" else data)
    await _assert_error(response, 422, field)
    async with sessionmaker() as session:
        stored = await session.get(Organizer, organizer.id)
    assert (stored.name, stored.email, stored.contact_email, stored.imprint_url, stored.terms_url) == (
        "Ada", "ada@example.com", None, None, None)


async def test_401_without_a_key(client):
    await _assert_error(await client.get("/api/organizer"), 401)
    await _assert_error(await client.patch("/api/organizer", json={"name": "X"}), 401)


async def test_patch_email_changes_the_sign_in_address_stored_lower_case(client, sessionmaker):
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    response = await client.patch("/api/organizer", headers=auth(key), json={"email": "Ada.Lovelace@Example.COM"})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["email"] == body["reply_to"] == "ada.lovelace@example.com"
    async with sessionmaker() as session:
        assert (await session.get(Organizer, organizer.id)).email == "ada.lovelace@example.com"
        assert await signin.organizers_with_email(session, "ADA.LOVELACE@example.com") == [
            await session.get(Organizer, organizer.id)]


async def test_patch_email_to_another_organizers_address_is_409_and_changes_nothing(client, sessionmaker):
    ada, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await factories.organizer(sessionmaker, name="Bob", email="bob@example.com")
    response = await client.patch("/api/organizer", headers=auth(key), json={"email": "BOB@example.com", "name": "X"})
    await _assert_error(response, 409, "email")
    async with sessionmaker() as session:
        stored = await session.get(Organizer, ada.id)
    assert (stored.email, stored.name) == ("ada@example.com", "Ada")


BILLING = ("invoices", "collect_tax_id", "automatic_tax", "prices_include_tax")


async def test_invoice_and_tax_settings_start_off_and_change_one_by_one(client, sessionmaker):
    organizer, key = await factories.organizer(sessionmaker)
    body = await (await client.get("/api/organizer", headers=auth(key))).json()
    assert {name: body[name] for name in BILLING} == dict.fromkeys(BILLING, False)
    assert body["invoice_footer"] is None

    response = await client.patch("/api/organizer", headers=auth(key), json={
        "invoices": True, "automatic_tax": True, "invoice_footer": " Widget GmbH\r\nVAT DE123456789 "})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert {name: body[name] for name in BILLING} == {
        "invoices": True, "collect_tax_id": False, "automatic_tax": True, "prices_include_tax": False}
    assert body["invoice_footer"] == "Widget GmbH\nVAT DE123456789"

    response = await client.patch("/api/organizer", headers=auth(key), json={
        "automatic_tax": False, "prices_include_tax": True, "invoice_footer": ""})
    body = await response.json()
    assert (body["invoices"], body["automatic_tax"], body["prices_include_tax"], body["invoice_footer"]) == (
        True, False, True, None)
    async with sessionmaker() as session:
        stored = await session.get(Organizer, organizer.id)
    assert (stored.invoices, stored.collect_tax_id, stored.automatic_tax, stored.prices_include_tax) == (
        True, False, False, True)


async def test_a_setting_that_is_not_a_boolean_is_422_and_changes_nothing(client, sessionmaker):
    organizer, key = await factories.organizer(sessionmaker, name="Ada")
    for field in BILLING:
        for value in (1, 0, "true", "yes", None, [], {"enabled": True}):
            # The other fields of the request are good: the whole request is refused all the same.
            others = {name: True for name in BILLING if name != field}
            response = await client.patch("/api/organizer", headers=auth(key),
                                          json={"name": "Changed", **others, field: value})
            await _assert_error(response, 422, field)
    async with sessionmaker() as session:
        stored = await session.get(Organizer, organizer.id)
    assert stored.name == "Ada"
    assert not any(getattr(stored, name) for name in BILLING)


@pytest.mark.parametrize("footer", ["x" * 501, "bell\x07", 42, ["a"]])
async def test_a_bad_invoice_footer_is_422_and_changes_nothing(client, sessionmaker, footer):
    organizer, key = await factories.organizer(sessionmaker)
    response = await client.patch("/api/organizer", headers=auth(key), json={"invoices": True,
                                                                              "invoice_footer": footer})
    await _assert_error(response, 422, "invoice_footer")
    async with sessionmaker() as session:
        stored = await session.get(Organizer, organizer.id)
    assert (stored.invoices, stored.invoice_footer) == (False, None)
