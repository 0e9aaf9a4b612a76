"""Stripe objects as each supported API version shapes them (tests/data/stripe/), filled in."""

from __future__ import annotations

import copy
import functools
import json
import secrets
from pathlib import Path
from typing import Any

from ticketing.payments.versions import API_VERSION, DATED_VERSIONS, RELEASES

SHAPES = Path(__file__).parent / "data" / "stripe"

# Every dated version, the first and a later monthly version of each named release, and ours.
VERSIONS = tuple(dict.fromkeys((
    *DATED_VERSIONS, "2024-09-30.acacia", "2025-02-24.acacia", "2025-03-31.basil", "2025-08-27.basil",
    "2025-09-30.clover", "2026-02-25.clover", "2026-03-25.dahlia", "2026-06-24.dahlia", API_VERSION)))
assert {v.partition(".")[2] for v in VERSIONS} - {""} == {name for name, _ in RELEASES}


@functools.cache
def _files() -> list[tuple[str, dict[str, Any]]]:
    return sorted((p.stem, json.loads(p.read_text())) for p in SHAPES.glob("*.json"))


def shapes(version: str) -> dict[str, Any]:
    """The newest shape file dated on or before `version`."""
    day = version.partition(".")[0]
    found = [shape for since, shape in _files() if since.partition(".")[0] <= day]
    return copy.deepcopy(found[-1])


def introduces_intent_on_payment(version: str) -> bool:
    """From 2022-08-01 a Checkout Session has no payment intent until the buyer pays."""
    return version.partition(".")[0] >= "2022-08-01"


def session(version: str, webinar, *, quantity: int = 1, payment_status: str = "paid", status: str = "complete",
            email: str = "buyer@example.com", payment_intent: str | None = None) -> dict[str, Any]:
    obj = shapes(version)["checkout.session"]
    intent = payment_intent or "pi_" + secrets.token_hex(12)
    if introduces_intent_on_payment(version) and payment_status == "unpaid":
        intent = None
    obj.update({
        "id": "cs_test_" + secrets.token_hex(12), "amount_subtotal": webinar.price_amount * quantity,
        "amount_total": webinar.price_amount * quantity, "currency": webinar.currency,
        "metadata": {"webinar_id": str(webinar.id), "quantity": str(quantity)},
        "payment_intent": intent, "payment_status": payment_status,
    })
    obj["customer_details"]["email"] = email
    if "status" in obj:
        obj["status"] = status
    return obj


def charge(version: str, payment_intent: str | None, *, amount: int, amount_refunded: int = 0,
           metadata: dict[str, str] | None = None) -> dict[str, Any]:
    obj = shapes(version)["charge"]
    obj.update({"id": "ch_" + secrets.token_hex(12), "amount": amount, "amount_captured": amount,
                "amount_refunded": amount_refunded, "refunded": amount_refunded >= amount,
                "payment_intent": payment_intent, "metadata": metadata or {}})
    if "refunds" in obj and amount_refunded:
        obj["refunds"]["data"] = [{"id": "re_" + secrets.token_hex(12), "object": "refund", "amount": amount_refunded,
                                   "charge": obj["id"], "payment_intent": payment_intent, "status": "succeeded"}]
        obj["refunds"]["total_count"] = 1
    return obj


def dispute(version: str, payment_intent: str | None, *, amount: int, status: str = "needs_response",
            charge_id: str | None = None) -> dict[str, Any]:
    obj = shapes(version)["dispute"]
    obj.update({"id": "dp_" + secrets.token_hex(12), "amount": amount, "status": status,
                "charge": charge_id or "ch_" + secrets.token_hex(12), "payment_intent": payment_intent})
    return obj


def invoice(version: str, invoice_id: str, *, order_id: str | None = None, amount: int) -> dict[str, Any]:
    """A paid one-off invoice of a Checkout Session, numbered, with its hosted page and PDF."""
    obj = shapes(version)["invoice"]
    token = secrets.token_hex(8)
    obj.update({"id": invoice_id, "amount_due": amount, "amount_paid": amount, "subtotal": amount, "total": amount,
                "number": "INV-" + token.upper(), "metadata": {"order_id": order_id} if order_id else {},
                "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_test/{token}",
                "invoice_pdf": f"https://pay.stripe.com/invoice/acct_test/{token}/pdf"})
    return obj


def credit_note(version: str, invoice_id: str, *, amount: int) -> dict[str, Any]:
    """A credit note issued against `invoice_id` after a refund of `amount`."""
    obj = shapes(version)["credit_note"]
    token, refund = secrets.token_hex(8), "re_" + secrets.token_hex(12)
    obj.update({"id": "cn_" + token, "invoice": invoice_id, "amount": amount, "subtotal": amount, "total": amount,
                "number": "CN-" + token.upper(), "pdf": f"https://pay.stripe.com/credit_notes/acct_test/{token}/pdf"})
    if "refunds" in obj:  # from 2025-03-31.basil a list; before, one refund id
        obj["refunds"] = [{"amount_refunded": amount, "refund": refund}]
    else:
        obj["refund"] = refund
    return obj
