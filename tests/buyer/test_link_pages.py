"""The join link `/j/{code}` and the free registration's confirmation link `/r/{code}`: where the
code names a webinar, its refusals (and the confirmation) speak the webinar's language with its
title, a link back and the organizer's footer; an unknown code gets the plain page in the
browser's language. Nothing is taken or counted by a refusal."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from tests import factories
from tests.access.conftest import add_ticket
from tests.buyer.conftest import profiled_organizer
from tests.pages import DESKTOP, PHONE, accessibility_problems
from ticketing.db.models import Job, Order, Webinar, WebinarStatus

TITLE = "Widgets für Fortgeschrittene"
UNKNOWN_JOIN = "B" * 43
UNKNOWN_CONFIRMATION = "x" * 43


async def _german_webinar(sessionmaker, **overrides):
    owner, _ = await profiled_organizer(sessionmaker, name="Widget-Akademie")
    return await factories.webinar(sessionmaker, owner, title=TITLE, language="de", **overrides)


def _framed(page: str, webinar) -> None:
    assert '<html lang="de">' in page and TITLE in page
    assert f'<a href="/w/{webinar.id}">Zurück zu {TITLE}</a>' in page
    assert "Veranstaltet von Widget-Akademie" in page and "help@widgets.example" in page


async def _confirmation_code(client, sessionmaker, webinar, email: str = "bea@example.com") -> str:
    response = await client.post(f"/w/{webinar.id}/checkout", data={"email": email}, allow_redirects=False)
    assert response.status == 303
    async with sessionmaker() as session:
        payloads = [job.payload for job in await session.scalars(
            select(Job).where(Job.kind == "mail.confirm_registration").order_by(Job.created_at))]
    return payloads[-1]["code"]


async def _orders(sessionmaker) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(Order))


async def test_a_rate_limited_join_link_is_a_german_429_of_its_webinar(make_settings, start_client, sessionmaker):
    client = await start_client(make_settings(join_rate_per_code="1"))
    webinar = await _german_webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    assert (await client.get(f"/j/{code}", allow_redirects=False)).status == 200  # the waiting page
    limited = await client.get(f"/j/{code}", headers={"Accept-Language": "en"}, allow_redirects=False)
    assert limited.status == 429 and 1 <= int(limited.headers["Retry-After"]) <= 3600
    page = await limited.text()
    _framed(page, webinar)
    assert "Zu viele Versuche" in page and "Too many" not in page
    async with sessionmaker() as session:
        assert (await session.get(Webinar, webinar.id)).seats_taken == 1  # its one ticket; the refusal changed nothing


async def test_an_unknown_join_link_is_plain_in_the_browsers_language(make_settings, start_client):
    client = await start_client(make_settings(join_rate_per_address="1", join_rate_per_code="0"))
    german = await client.get(f"/j/{UNKNOWN_JOIN}", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    page = await german.text()
    assert german.status == 404 and '<html lang="de">' in page
    assert "<h1>Nicht gefunden</h1>" in page and "Dieser Zugangslink ist nicht bekannt." in page
    assert "join link" not in page
    # Too many wrong codes from one address: refused before any look-up, still in German.
    limited = await client.get(f"/j/{UNKNOWN_JOIN[:-1]}C", headers={"Accept-Language": "de"})
    assert limited.status == 429 and "Retry-After" in limited.headers
    assert "Zu viele Versuche aus Ihrem Netzwerk" in await limited.text()


async def test_an_unknown_join_link_is_english_for_an_english_browser(client):
    response = await client.get(f"/j/{UNKNOWN_JOIN}", headers={"Accept-Language": "en-GB,de;q=0.3"})
    page = await response.text()
    assert response.status == 404 and '<html lang="en">' in page
    assert "This join link is not known." in page and "Zugangslink" not in page


async def test_the_confirmation_page_and_its_refusals_are_german(client, sessionmaker):
    webinar = await _german_webinar(sessionmaker, price_amount=0, capacity=5)
    code = await _confirmation_code(client, sessionmaker, webinar)
    confirmed = await client.get(f"/r/{code}", headers={"Accept-Language": "en"})
    page = await confirmed.text()
    assert confirmed.status == 200 and "Ihr Platz ist bestätigt" in page and "Your seat" not in page
    _framed(page, webinar)
    again = await (await client.get(f"/r/{code}")).text()
    assert "Sie sind bereits angemeldet" in again
    assert await _orders(sessionmaker) == 1

    # A newer registration of the same webinar, which then stops being free: a German 409.
    other = await _confirmation_code(client, sessionmaker, webinar, email="carl@example.com")
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(price_amount=2500))
    refused = await client.get(f"/r/{other}", headers={"Accept-Language": "en"})
    page = await refused.text()
    assert refused.status == 409
    _framed(page, webinar)
    assert "Dieses Webinar ist nicht mehr kostenlos." in page
    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(
            price_amount=0, status=WebinarStatus.CANCELLED))
    cancelled = await client.get(f"/r/{other}")
    page = await cancelled.text()
    assert cancelled.status == 409 and "abgesagt" in page
    _framed(page, webinar)
    assert await _orders(sessionmaker) == 1


@pytest.mark.parametrize("accept, expected", [
    ("de", "Dieser Bestätigungslink ist nicht bekannt"),
    ("en-US", "This confirmation link is not known"),
])
async def test_an_unknown_confirmation_link_is_plain_in_the_browsers_language(client, accept, expected):
    response = await client.get(f"/r/{UNKNOWN_CONFIRMATION}", headers={"Accept-Language": accept})
    assert response.status == 404 and expected in await response.text()


async def test_the_link_pages_in_a_german_browser(browser, live, sessionmaker):
    webinar = await _german_webinar(sessionmaker, price_amount=0, capacity=5)
    context = await browser.new_context(locale="de-DE")
    page = await context.new_page()
    try:
        for viewport in (DESKTOP, PHONE):
            await page.set_viewport_size(viewport)
            await page.goto(f"{live.url}/w/{webinar.id}")
            await page.fill("input[name=email]", f"{viewport['width']}@example.com")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**/checkout/success**")
            async with sessionmaker() as session:
                code = (await session.scalars(select(Job).where(Job.kind == "mail.confirm_registration")
                                              .order_by(Job.created_at.desc()))).first().payload["code"]
            await page.goto(f"{live.url}/r/{code}")
            assert await page.inner_text("h1") == "Ihr Platz ist bestätigt"
            assert await accessibility_problems(page) == []
            # Back to the webinar's page by keyboard alone.
            for _ in range(20):
                await page.keyboard.press("Tab")
                if await page.evaluate("document.activeElement.textContent") == f"Zurück zu {TITLE}":
                    break
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"**/w/{webinar.id}")

            answer = await page.goto(f"{live.url}/j/{UNKNOWN_JOIN}")
            assert answer.status == 404 and await page.inner_text("h1") == "Nicht gefunden"
            assert await page.get_attribute("html", "lang") == "de"
            assert await accessibility_problems(page) == []
            answer = await page.goto(f"{live.url}/r/{UNKNOWN_CONFIRMATION}")
            assert answer.status == 404 and "Bestätigungslink" in await page.inner_text("main")
            assert await accessibility_problems(page) == []
    finally:
        await context.close()
