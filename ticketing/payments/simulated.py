"""Checkout events as Stripe would send them, for dev mode's test-payment page and
`ticketing simulate checkout`: both then go through the real webhook path."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from ticketing.payments.versions import API_VERSION


def new_session_id() -> str:
    return "cs_test_" + secrets.token_hex(16)


def checkout_completed_event(
    *,
    session_id: str,
    webinar_id: str,
    quantity: int,
    email: str,
    amount_total: int,
    currency: str,
    order_id: str | None = None,
    name: str | None = None,
    invoice: str | None = None,
    api_version: str = API_VERSION,
) -> dict[str, Any]:
    """A paid `checkout.session.completed` event in test mode, rendered in `api_version`
    (the fields it carries are shaped alike in every supported version)."""
    metadata = {"webinar_id": webinar_id, "quantity": str(quantity)}
    if order_id:
        metadata["order_id"] = order_id
    now = int(time.time())
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": api_version,
        "created": now,
        "livemode": False,
        "pending_webhooks": 1,
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": session_id,
                "object": "checkout.session",
                "mode": "payment",
                "status": "complete",
                "payment_status": "paid",
                "amount_total": amount_total,
                "currency": currency,
                "client_reference_id": order_id,
                "customer_details": {"email": email, "name": name},
                "customer_email": email,
                "livemode": False,
                "metadata": metadata,
                "payment_intent": "pi_test_" + secrets.token_hex(12),
                "invoice": invoice,
                "created": now,
            }
        },
    }


def new_invoice_id() -> str:
    return "in_test_" + secrets.token_hex(12)


def invoice_paid_event(*, invoice_id: str, number: str, url: str, order_id: str, webinar_id: str, email: str,
                       amount: int, currency: str, api_version: str = API_VERSION) -> dict[str, Any]:
    """The `invoice.paid` of dev mode's stand-in invoice: numbered, with a page of our own and no PDF."""
    now = int(time.time())
    return {
        "id": "evt_" + secrets.token_hex(12), "object": "event", "api_version": api_version, "created": now,
        "livemode": False, "pending_webhooks": 1, "type": "invoice.paid",
        "data": {"object": {
            "id": invoice_id, "object": "invoice", "number": number, "status": "paid", "hosted_invoice_url": url,
            "invoice_pdf": None, "amount_paid": amount, "total": amount, "currency": currency, "customer_email": email,
            "livemode": False, "metadata": {"order_id": order_id, "webinar_id": webinar_id}, "created": now,
        }},
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
