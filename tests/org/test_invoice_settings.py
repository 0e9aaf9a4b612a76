"""The console's invoice and tax settings over HTTP: ticked boxes turn settings on, unticked
ones off, and a refused footer changes nothing, the message beside the field."""

from __future__ import annotations

from tests import factories
from tests.org.conftest import csrf_of
from ticketing.db.models import Organizer

PROFILE = {"name": "Ada", "contact_email": "", "imprint_url": "", "terms_url": "", "console_language": ""}


async def _stored(sessionmaker, organizer_id) -> Organizer:
    async with sessionmaker() as session:
        return await session.get(Organizer, organizer_id)


async def test_boxes_turn_settings_on_and_off_and_a_bad_footer_changes_nothing(client, sessionmaker, signed_in):
    organizer, _ = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    page = await (await client.get("/org/settings")).text()
    csrf = csrf_of(page)
    assert 'id="invoices" name="invoices" type="checkbox" value="1"' in page

    response = await client.post("/org/settings", allow_redirects=False, data={
        **PROFILE, "csrf_token": csrf, "invoices": "1", "automatic_tax": "1", "invoice_footer": "Ada GmbH\r\nBerlin"})
    assert response.status == 303
    stored = await _stored(sessionmaker, organizer.id)
    assert (stored.invoices, stored.collect_tax_id, stored.automatic_tax, stored.prices_include_tax) == (
        True, False, True, False)
    assert stored.invoice_footer == "Ada GmbH\nBerlin"
    page = await (await client.get("/org/settings")).text()
    assert 'value="1" checked aria-describedby="invoices-hint"' in page

    refused = await client.post("/org/settings", data={**PROFILE, "csrf_token": csrf, "prices_include_tax": "1",
                                                       "invoice_footer": "bell\x07"})
    assert refused.status == 422
    text = await refused.text()
    assert "plain characters" in text.split('id="invoice_footer-error">')[1].split("</p>")[0]
    stored = await _stored(sessionmaker, organizer.id)
    assert (stored.invoices, stored.automatic_tax, stored.prices_include_tax, stored.invoice_footer) == (
        True, True, False, "Ada GmbH\nBerlin")

    # Nothing ticked: every setting off again.
    await client.post("/org/settings", data={**PROFILE, "csrf_token": csrf}, allow_redirects=False)
    stored = await _stored(sessionmaker, organizer.id)
    assert not any((stored.invoices, stored.collect_tax_id, stored.automatic_tax, stored.prices_include_tax))
    assert stored.invoice_footer is None
