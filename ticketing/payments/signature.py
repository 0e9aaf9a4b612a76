"""Stripe's webhook signature: checking it on the way in, making it for dev mode and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import stripe

TOLERANCE_SECONDS = 300


class BadSignature(Exception):
    """The Stripe-Signature header is missing, stale or matches none of the webhook secrets."""


class BadPayload(Exception):
    """The webhook body is not a Stripe event."""


def verify(body: bytes, header: str | None, secrets: Sequence[str]) -> dict[str, Any]:
    """The event in `body` once its signature matches one of `secrets`, within the tolerance.

    The signature covers the exact bytes received, so they are checked before parsing.
    """
    if not header:
        raise BadSignature("missing Stripe-Signature header")
    if not header.isascii():  # a header that was not UTF-8 arrives with lone surrogates in it
        raise BadSignature("the Stripe-Signature header is not ASCII")
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(body, header, secret, tolerance=TOLERANCE_SECONDS)
            break
        except stripe.SignatureVerificationError:
            continue
        except UnicodeDecodeError:
            raise BadPayload("the body is not UTF-8") from None
    else:
        raise BadSignature("the Stripe-Signature header matches no webhook secret, or is older than 5 minutes")
    # Stripe's check bounds only the past; a timestamp far ahead would keep a captured
    # delivery replayable until then.
    if _timestamp(header) > time.time() + TOLERANCE_SECONDS:
        raise BadSignature("the Stripe-Signature timestamp is more than 5 minutes in the future")
    try:
        # NaN and Infinity are not JSON, and PostgreSQL would refuse to store them.
        event = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise BadPayload("the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise BadPayload("the body is not a Stripe event (no id or type)")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise BadPayload("the event has no data.object")
    return event


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _timestamp(header: str) -> int:
    """The `t=` of a header that has already verified (so it is there and numeric)."""
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            return int(value)
    raise BadSignature("the Stripe-Signature header has no timestamp")


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send with `body`."""
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp or int(time.time()))
