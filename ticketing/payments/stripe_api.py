"""The official Stripe client, configured from settings, and the calls this service makes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import stripe

from ticketing.db.models import Order, TicketType, Webinar
from ticketing.errors import Unavailable
from ticketing.payments.versions import API_VERSION
from ticketing.settings import Settings
from ticketing.webinars.sales import MIN_CHECKOUT_WINDOW, checkout_expires_at


def create_stripe_client(settings: Settings) -> stripe.StripeClient | None:
    """A client on aiohttp, or None in dev mode (no secret key)."""
    if settings.stripe_secret_key is None:
        return None
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_secret_key,
        http_client=stripe.AIOHTTPClient(timeout=20),
        base_addresses=base,
        stripe_version=API_VERSION,
        max_network_retries=2,
    )


async def close_stripe_client(client: stripe.StripeClient) -> None:
    await client._requestor._client.close_async()


def checkout_metadata(order: Order, webinar: Webinar) -> dict[str, str]:
    return {"webinar_id": str(webinar.id), "quantity": str(order.quantity), "order_id": str(order.id)}


def _line_item(name: str, currency: str, unit_amount: int, quantity: int) -> dict[str, Any]:
    return {"quantity": quantity,
            "price_data": {"currency": currency, "unit_amount": unit_amount, "product_data": {"name": name}}}


def _line_name(webinar: Webinar, kind: TicketType, unit: int, code: str | None) -> str:
    name = f"{webinar.title} · {kind.name}"
    if code and unit != kind.price_amount:
        name += f" · code {code.upper()}"
    return name


def checkout_session_params(settings: Settings, order: Order, webinar: Webinar, *, now: dt.datetime,
                            lines: list[tuple[TicketType, int, int]] | None = None,
                            code: str | None = None, until: dt.datetime | None = None) -> dict[str, Any]:
    """The Checkout Session for `order`: the prices inline, one line item per ticket type of a
    typed webinar (named "title · type", so Stripe's receipt says what each seat is) at the unit
    price the order fixed, a promo `code` named on every line it priced, our ids in the metadata
    of both the session and its payment intent (refund and dispute events carry the latter). A
    session never outlives the sales of any type it sells, nor (as far as Stripe allows: half an
    hour at least) `until`, the end of the waitlist offer whose held seats it sells."""
    metadata = checkout_metadata(order, webinar)
    if (webinar.typed or code) and lines:
        items = [_line_item(_line_name(webinar, kind, unit, code), webinar.currency, unit, count)
                 for kind, count, unit in lines]
        closes = min([kind.sales_end for kind, _, _ in lines if kind.sales_end is not None], default=None)
    else:
        items, closes = [_line_item(webinar.title, webinar.currency, webinar.price_amount, order.quantity)], None
    expires = checkout_expires_at(webinar, now, dt.timedelta(minutes=settings.checkout_expires_minutes))
    if closes is not None:
        expires = min(expires, closes)
    if until is not None:
        expires = min(expires, max(until, now + MIN_CHECKOUT_WINDOW))
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": items,
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata},
        "client_reference_id": str(order.id),
        "success_url": f"{settings.base_url}/checkout/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"{settings.base_url}/w/{webinar.id}",
        # Never after the sales end, so no session can complete once sales have closed.
        "expires_at": int(expires.timestamp()),
    }
    if order.email:
        params["customer_email"] = order.email
    return params


async def create_checkout_session(client: stripe.StripeClient, params: dict[str, Any], order: Order) -> tuple[str, str]:
    """Create the session (idempotent per order); returns its id and the URL to send the buyer to."""
    try:
        session = await client.v1.checkout.sessions.create_async(
            params, {"idempotency_key": f"checkout-{order.id}"}
        )
    except stripe.StripeError as error:
        raise Unavailable(f"Stripe did not create the checkout session: {error.user_message or type(error).__name__}") from error
    return session.id, session.url
