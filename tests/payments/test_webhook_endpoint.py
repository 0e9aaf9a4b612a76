"""`ticketing stripe webhook create|show` through the console script against the Stripe stand-in."""

from __future__ import annotations

from tests.conftest import STRIPE_SECRET_KEY
from tests.test_cli import arun, assert_one_line_error, bare_env  # noqa: F401  (fixtures)
from ticketing.payments.events import HANDLED_TYPES
from ticketing.payments.versions import API_VERSION

URL = "https://tickets.example.com/webhooks/stripe"


def _env(bare_env, stripe_standin) -> dict[str, str]:
    return {**bare_env, "TICKETING_STRIPE_SECRET_KEY": STRIPE_SECRET_KEY, "TICKETING_STRIPE_WEBHOOK_SECRET": "whsec_old",
            "TICKETING_STRIPE_API_BASE": stripe_standin.url, "TICKETING_BASE_URL": "https://tickets.example.com",
            "TICKETING_JITSI_APP_SECRET": "j" * 32, "TICKETING_SESSION_KEY": "s" * 32}


async def test_create_makes_the_endpoint_once_and_prints_its_secret_last(tmp_path, bare_env, stripe_standin):
    env = _env(bare_env, stripe_standin)
    shown = await arun(["stripe", "webhook", "show"], env, tmp_path)
    assert_one_line_error(shown, code=1)
    assert "no Stripe webhook endpoint for " + URL in shown.stderr

    made = await arun(["stripe", "webhook", "create"], env, tmp_path)
    assert made.returncode == 0, made.stderr
    [endpoint] = stripe_standin.webhook_endpoints.values()
    assert (endpoint["url"], sorted(endpoint["enabled_events"]), endpoint["api_version"]) == (
        URL, sorted(HANDLED_TYPES), API_VERSION)
    assert made.stdout.splitlines()[-1] == endpoint["secret"]
    assert "as this service needs it" in made.stdout

    again = await arun(["stripe", "webhook", "create"], env, tmp_path)
    assert again.returncode == 0 and len(stripe_standin.webhook_endpoints) == 1
    assert "exists already" in again.stdout and endpoint["secret"] not in again.stdout

    shown = await arun(["stripe", "webhook", "show"], env, tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"{endpoint['id']}  {URL}  enabled  API version {API_VERSION}" in shown.stdout


async def test_show_says_what_differs(tmp_path, bare_env, stripe_standin):
    stripe_standin.webhook_endpoints["we_old"] = {
        "id": "we_old", "object": "webhook_endpoint", "api_version": "2019-12-03", "created": 1,
        "enabled_events": ["checkout.session.completed", "customer.created"], "status": "disabled", "url": URL,
        "secret": "whsec_x"}
    env = _env(bare_env, stripe_standin)
    shown = await arun(["stripe", "webhook", "show"], env, tmp_path)
    assert_one_line_error(shown, code=1)
    differs = [line for line in shown.stdout.splitlines() if "differs:" in line]
    assert len(differs) == 3
    assert "does not send charge.dispute.closed" in differs[0]
    assert "2019-12-03" in differs[1] and "disabled" in differs[2]
    assert "also sends customer.created" in shown.stdout
    made = await arun(["stripe", "webhook", "create"], env, tmp_path)
    assert_one_line_error(made, code=1)
    assert len(stripe_standin.webhook_endpoints) == 1  # reported, not duplicated


async def test_without_a_key_or_with_stripe_down_it_is_one_line(tmp_path, bare_env, stripe_standin):
    no_key = await arun(["stripe", "webhook", "create"], bare_env, tmp_path)
    assert "TICKETING_STRIPE_SECRET_KEY is not set" in assert_one_line_error(no_key, code=1)
    stripe_standin.fail_next(10, status=500, should_retry=False)
    down = await arun(["stripe", "webhook", "create"], _env(bare_env, stripe_standin), tmp_path)
    assert "Stripe answered 500" in assert_one_line_error(down, code=1)
    assert stripe_standin.webhook_endpoints == {}


async def test_an_endpoint_made_before_invoices_were_handled_is_noted_not_refused(tmp_path, bare_env, stripe_standin):
    billing = {"invoice.finalized", "invoice.paid", "credit_note.created"}
    assert billing <= set(HANDLED_TYPES)
    stripe_standin.webhook_endpoints["we_before"] = {
        "id": "we_before", "object": "webhook_endpoint", "api_version": API_VERSION, "created": 1,
        "enabled_events": sorted(set(HANDLED_TYPES) - billing), "status": "enabled", "url": URL, "secret": "whsec_x"}
    shown = await arun(["stripe", "webhook", "show"], _env(bare_env, stripe_standin), tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "does not send credit_note.created, invoice.finalized, invoice.paid" in shown.stdout
    assert "differs:" not in shown.stdout
