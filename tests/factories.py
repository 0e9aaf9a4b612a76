"""Small builders for rows and Stripe events, with defaults a test can override."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ticketing.db import utcnow
from ticketing.db.models import Organizer, Webinar
from ticketing.organizers import create_organizer
from ticketing.payments.signature import sign
from ticketing.payments.versions import API_VERSION
from ticketing.webinars.service import create_webinar


async def organizer(sessionmaker: async_sessionmaker[AsyncSession], name: str = "Ada Organizer",
                    email: str = "ada@example.com") -> tuple[Organizer, str]:
    """An organizer and its API key."""
    async with sessionmaker.begin() as session:
        return await create_organizer(session, name, email)


def webinar_input(**overrides: Any) -> dict[str, Any]:
    """API input for a webinar starting in two days, one hour long, 10 seats at 25.00 EUR."""
    starts = (utcnow() + dt.timedelta(days=2)).replace(microsecond=0)
    data: dict[str, Any] = {
        "title": "Intro to Widgets",
        "description": "An hour on widgets.",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + dt.timedelta(hours=1)).isoformat(),
        "price_amount": 2500,
        "currency": "EUR",
        "capacity": 10,
    }
    data.update(overrides)
    return data


async def webinar(sessionmaker: async_sessionmaker[AsyncSession], owner: Organizer | None = None,
                  **overrides: Any) -> Webinar:
    if owner is None:
        owner, _ = await organizer(sessionmaker, email=f"o{secrets.token_hex(3)}@example.com")
    async with sessionmaker.begin() as session:
        return await create_webinar(session, owner, webinar_input(**overrides))


def event(event_type: str, obj: dict[str, Any], *, event_id: str | None = None, livemode: bool = False,
          api_version: str = API_VERSION) -> dict[str, Any]:
    return {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": api_version,
        "created": int(time.time()),
        "livemode": livemode,
        "type": event_type,
        "data": {"object": obj},
    }


def checkout_session(webinar: Webinar, *, quantity: int = 1, session_id: str | None = None,
                     amount_total: int | None = None, currency: str | None = None, payment_status: str = "paid",
                     email: str = "buyer@example.com", payment_intent: str | None = None,
                     order_id: uuid.UUID | None = None, **extra: Any) -> dict[str, Any]:
    """A Checkout Session object as Stripe sends it in checkout.session.* events."""
    metadata = {"webinar_id": str(webinar.id), "quantity": str(quantity)}
    if order_id:
        metadata["order_id"] = str(order_id)
    obj = {
        "id": session_id or "cs_test_" + secrets.token_hex(12),
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": payment_status,
        "status": "complete",
        "amount_total": webinar.price_amount * quantity if amount_total is None else amount_total,
        "currency": currency or webinar.currency,
        "client_reference_id": str(order_id) if order_id else None,
        "customer_details": {"email": email, "name": "Bea Buyer"},
        "metadata": metadata,
        "payment_intent": payment_intent or "pi_" + secrets.token_hex(12),
        "livemode": False,
    }
    obj.update(extra)
    return obj


def charge(payment_intent: str, *, amount: int, amount_refunded: int = 0, metadata: dict[str, str] | None = None,
           ) -> dict[str, Any]:
    return {
        "id": "ch_" + secrets.token_hex(12),
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= amount,
        "currency": "eur",
        "payment_intent": payment_intent,
        "metadata": metadata or {},
    }


def dispute(payment_intent: str, *, amount: int, status: str = "needs_response") -> dict[str, Any]:
    return {
        "id": "dp_" + secrets.token_hex(12),
        "object": "dispute",
        "amount": amount,
        "charge": "ch_" + secrets.token_hex(12),
        "payment_intent": payment_intent,
        "status": status,
    }


def signed(body: bytes | dict[str, Any], secret: str, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """A body and the headers Stripe would send with it."""
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    return body, {"Content-Type": "application/json", "Stripe-Signature": sign(body, secret, timestamp)}


async def post_event(client: TestClient, evt: dict[str, Any], secret: str | None = None):
    """POST a correctly signed event to the app behind `client`; returns the response."""
    from ticketing.web.keys import SETTINGS

    secret = secret or client.app[SETTINGS].stripe_webhook_secrets[0]
    body, headers = signed(evt, secret)
    return await client.post("/webhooks/stripe", data=body, headers=headers)
