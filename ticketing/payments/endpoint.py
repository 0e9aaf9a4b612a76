"""The Stripe webhook endpoint this service needs, made and compared through Stripe's API:
its URL (`{TICKETING_BASE_URL}/webhooks/stripe`), exactly the handled event types, the API
version the service is written for, enabled. `ticketing stripe webhook create|show` and
`ticketing check` use it."""

from __future__ import annotations

import dataclasses
from typing import Any

import stripe

from ticketing.payments.events import HANDLED_TYPES
from ticketing.payments.invoices import CREDIT_NOTE_TYPES, INVOICE_TYPES
from ticketing.payments.versions import API_VERSION, is_supported
from ticketing.settings import Settings

WEBHOOK_PATH = "/webhooks/stripe"
DESCRIPTION = "ticketing: checkout, refund and dispute events"


def endpoint_url(settings: Settings) -> str:
    return f"{settings.base_url}{WEBHOOK_PATH}"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """How an endpoint differs from the one the service needs: `problems` make it unfit,
    `notes` are worth knowing but change nothing."""

    endpoint_id: str
    problems: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


BILLING_TYPES = (*INVOICE_TYPES, *CREDIT_NOTE_TYPES)


def compare(endpoint: dict[str, Any], settings: Settings) -> Comparison:
    """Compare a webhook endpoint object (as Stripe's API returns it) with what the service needs."""
    problems, notes = [], []
    url = endpoint.get("url")
    if url != endpoint_url(settings):
        problems.append(f"its URL is {url}, not {endpoint_url(settings)}")
    enabled = set(endpoint.get("enabled_events") or [])
    if "*" not in enabled:
        missing = sorted(set(HANDLED_TYPES) - enabled - set(BILLING_TYPES))
        if missing:
            problems.append(f"it does not send {', '.join(missing)}")
        # An endpoint made before invoices were handled: they still arrive, later, through the
        # worker's sweep of Stripe's event list and the invoice lookup.
        if missing_billing := sorted(set(BILLING_TYPES) - enabled):
            notes.append(f"it does not send {', '.join(missing_billing)} (invoices and credit notes then come "
                         f"with the worker's sweep, a little later); delete it and run `ticketing stripe webhook "
                         f"create` for one that does")
        extra = sorted(enabled - set(HANDLED_TYPES))
        if extra:
            notes.append(f"it also sends {', '.join(extra)} (stored and answered, not acted on)")
    else:
        notes.append("it sends every event type (the others are stored and answered, not acted on)")
    version = endpoint.get("api_version")
    if version is None:
        problems.append("it has no API version of its own (it follows the account's default, which can change): "
                        "make a new endpoint with `ticketing stripe webhook create`")
    elif not is_supported(version):
        problems.append(f"its API version {version} is not one this service reads on the fast path "
                        f"(it is written for {API_VERSION})")
    elif version != API_VERSION:
        notes.append(f"its API version {version} is supported (this service is written for {API_VERSION})")
    status = endpoint.get("status")
    if status != "enabled":
        problems.append(f"it is {status or 'in an unknown state'}, not enabled")
    return Comparison(str(endpoint.get("id")), problems, notes)


async def endpoints_for(client: stripe.StripeClient, settings: Settings) -> list[dict[str, Any]]:
    """The account's webhook endpoints whose URL is this service's, oldest first."""
    found, params = [], {"limit": 100}
    while True:
        page = await client.v1.webhook_endpoints.list_async(params)
        found += [e for e in (item.to_dict() for item in page.data) if e.get("url") == endpoint_url(settings)]
        if not page.has_more or not page.data:
            break
        params = {"limit": 100, "starting_after": page.data[-1].id}
    return sorted(found, key=lambda e: e.get("created") or 0)


async def create_endpoint(client: stripe.StripeClient, settings: Settings) -> tuple[dict[str, Any], bool]:
    """The endpoint for this service's URL: an existing one (not duplicated), or a new one made
    with exactly the handled types and the service's API version. True when made now; only a
    new endpoint carries its signing `secret`, which Stripe shows once."""
    existing = await endpoints_for(client, settings)
    if existing:
        return existing[0], False
    made = await client.v1.webhook_endpoints.create_async({
        "url": endpoint_url(settings), "enabled_events": list(HANDLED_TYPES), "api_version": API_VERSION,
        "description": DESCRIPTION,
    })
    return made.to_dict(), True
