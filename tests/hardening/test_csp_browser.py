"""The Content-Security-Policy in headless Chromium: the console's and buyer pages' scripts run
(copy buttons, the live sales figure, the viewer's own time, the countdown) and the browser
reports no violation; a script without the nonce is refused and reported."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests import factories
from tests.access.conftest import add_ticket
from tests.org.conftest import console  # noqa: F401  (the fixture)
from tests.org.test_console_browser import until
from ticketing.accounts import signin
from ticketing.db.models import Webinar

pytestmark = pytest.mark.browser

LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + (e.blockedURI || "inline")));
"""


async def watched_page(browser, **context):
    """A page whose CSP violations (events and console messages) and script errors are recorded."""
    ctx = await browser.new_context(**context)
    await ctx.add_init_script(LISTEN)
    page = await ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return page, problems


async def violations(page) -> list[str]:
    return await page.evaluate("window.__violations")


async def test_console_scripts_run_under_the_policy(browser, console, sessionmaker):
    url, _ = console
    organizer, _ = await factories.organizer(sessionmaker, email="ada@example.com")
    webinar = await factories.webinar(sessionmaker, organizer)
    async with sessionmaker.begin() as session:
        token = await signin.issue_token(session, organizer.id)
    page, problems = await watched_page(browser)
    await page.goto(f"{url}/org/login/{token}")
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{url}/org")

    await page.goto(f"{url}/org/webinars/{webinar.id}")
    copy = page.locator("button.copy").first
    assert await copy.is_visible()  # shown by the copy script
    await copy.click()
    await page.wait_for_function("() => document.querySelector('button.copy').textContent === 'Copied'")

    # The live figure: mark it stale, bring the tab back, and the script fetches fresh figures.
    await page.evaluate("document.querySelector('#sales [data-live]').textContent = 'stale'")
    await page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
    await page.wait_for_function("() => document.querySelector('#sales [data-live]').textContent !== 'stale'")

    assert await violations(page) == [] and problems == []

    # The policy is really enforced and really reported: a script without the nonce is refused.
    await page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__ran = true'; document.body.append(s); }""")
    assert await until(lambda: violations(page)) and await page.evaluate("window.__ran === undefined")


async def test_buyer_scripts_run_under_the_policy(browser, client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)  # starts in two days, at UTC
    _, code = await add_ticket(sessionmaker, webinar)
    page, problems = await watched_page(browser, timezone_id="Asia/Tokyo")

    await page.goto(str(client.make_url(f"/w/{webinar.id}")))
    viewer = page.locator(".viewer-time").first
    await viewer.wait_for(state="visible")  # the viewer's own time, written by the page's script
    assert "Asia/Tokyo" in await viewer.inner_text()

    await page.goto(str(client.make_url(f"/j/{code}")))
    countdown = page.locator("#countdown")
    first = await countdown.inner_text()
    await page.wait_for_function("(t) => document.getElementById('countdown').textContent !== t", arg=first)

    async with sessionmaker.begin() as session:
        await session.execute(update(Webinar).where(Webinar.id == webinar.id).values(price_amount=0))
    await page.goto(str(client.make_url(f"/w/{webinar.id}")))
    await page.fill("input[name=email]", "reg@example.com")
    await page.click("form.buy button[type=submit]")
    await page.wait_for_url("**/checkout/success**")

    assert await violations(page) == [] and problems == []
