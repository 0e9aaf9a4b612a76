"""Organizers: their sign-in address, their API keys (shown once, stored as a SHA-256 hash) and
the profile buyers see; listing, changing and removing them (the `ticketing organizer` commands).

A sign-in address is stored lower-case and belongs to one organizer, so the console's sign-in
by mail and `organizer login-link` always find exactly one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.accounts.apikeys import KEY_PREFIX, hash_api_key, is_plausible_key, organizer_for_named_key
from ticketing.db import utcnow
from ticketing.db.models import Organizer, Webinar, WebinarStatus
from ticketing.errors import N_, Conflict, Invalid, NotFound, Text
from ticketing.inputs import email_address, has_control


def sign_in_address(value: object, *, field: str = "email") -> str:
    """A sign-in address as stored: a plain address, lower-case (Invalid otherwise)."""
    if not isinstance(value, str):
        raise Invalid(f"{field} must be an email address", field=field)
    return email_address(value, field=field).lower()


async def _claim_address(session: AsyncSession, email: str, organizer_id: uuid.UUID | None = None) -> None:
    """Conflict when another organizer signs in with `email` already."""
    holder = await session.scalar(select(Organizer.id).where(Organizer.email == email))
    if holder is not None and holder != organizer_id:
        raise Conflict(f"an organizer already signs in with {email}", field="email")


async def _flush(session: AsyncSession, email: str) -> None:
    # Two requests for one address at once: the unique constraint decides, and the loser hears why.
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"an organizer already signs in with {email}", field="email") from None


async def create_organizer(session: AsyncSession, name: str, email: str) -> tuple[Organizer, str]:
    """Create an organizer; returns it with its API key, which is not kept anywhere. Conflict
    when the address signs in an organizer already."""
    name = name.strip()
    if not name or len(name) > 200 or has_control(name):
        raise Invalid(Text(N_("name must be 1 to 200 plain characters")), field="name")
    email = sign_in_address(email)
    await _claim_address(session, email)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    organizer = Organizer(name=name, email=email, api_key_hash=hash_api_key(key))
    session.add(organizer)
    await _flush(session, email)
    return organizer, key


async def organizer_by_email(session: AsyncSession, email: str, *, for_update: bool = False) -> Organizer:
    """The organizer who signs in with `email` (in any case); NotFound otherwise."""
    email = sign_in_address(email)
    query = select(Organizer).where(Organizer.email == email)
    organizer = await session.scalar(query.with_for_update() if for_update else query)
    if organizer is None:
        raise NotFound(f"no organizer signs in with {email}")
    return organizer


@dataclasses.dataclass(frozen=True)
class Listed:
    """An organizer as `ticketing organizer list` shows it."""

    organizer: Organizer
    webinars: int
    upcoming: int


def _upcoming(now: dt.datetime):
    """Scheduled webinars not over yet: on sale, or sold and still to be held."""
    return (Webinar.status == WebinarStatus.SCHEDULED) & (Webinar.ends_at > now)


async def list_organizers(session: AsyncSession, *, now: dt.datetime | None = None) -> list[Listed]:
    """Every organizer, oldest first, with how many webinars they have and how many are to come."""
    now = now or utcnow()
    counts = (
        select(Webinar.organizer_id, func.count().label("webinars"),
               func.count().filter(_upcoming(now)).label("upcoming"))
        .group_by(Webinar.organizer_id).subquery()
    )
    rows = await session.execute(
        select(Organizer, func.coalesce(counts.c.webinars, 0), func.coalesce(counts.c.upcoming, 0))
        .outerjoin(counts, counts.c.organizer_id == Organizer.id)
        .order_by(Organizer.created_at, Organizer.id)
    )
    return [Listed(organizer, webinars, upcoming) for organizer, webinars, upcoming in rows]


async def update_organizer(session: AsyncSession, email: str, *, new_email: str | None = None,
                           name: str | None = None) -> Organizer:
    """Change the sign-in address and/or the name of the organizer who signs in with `email`."""
    organizer = await organizer_by_email(session, email, for_update=True)
    if name is not None:
        organizer.name = _name(name)
    if new_email is not None:
        await _change_address(session, organizer, new_email)
    await _flush(session, organizer.email)
    return organizer


async def _change_address(session: AsyncSession, organizer: Organizer, value: object) -> None:
    email = sign_in_address(value)
    await _claim_address(session, email, organizer.id)
    organizer.email = email


async def remove_organizer(session: AsyncSession, email: str, *, now: dt.datetime | None = None) -> tuple[Organizer, int]:
    """Delete the organizer who signs in with `email`, with its keys, sessions and past webinars
    (their orders and tickets go with them). Conflict while a webinar of theirs is on sale or
    still to be held: cancel it first, so its buyers are refunded and told. Returns the removed
    organizer and how many webinars went with it."""
    now = now or utcnow()
    organizer = await organizer_by_email(session, email, for_update=True)
    webinars = list(await session.scalars(select(Webinar).where(Webinar.organizer_id == organizer.id)))
    upcoming = [webinar for webinar in webinars if webinar.status == WebinarStatus.SCHEDULED and webinar.ends_at > now]
    if upcoming:
        titles = ", ".join(repr(webinar.title) for webinar in upcoming[:3]) + (" …" if len(upcoming) > 3 else "")
        raise Conflict(f"{organizer.email} has {len(upcoming)} webinar(s) on sale or still to be held ({titles}); "
                       f"cancel them first (POST /api/webinars/{{id}}/cancel or the console), then remove")
    # The database deletes what hangs off the organizer (ON DELETE CASCADE).
    await session.execute(delete(Organizer).where(Organizer.id == organizer.id))
    return organizer, len(webinars)


async def organizer_for_key(session: AsyncSession, key: str) -> Organizer | None:
    """The organizer holding `key`, if any: the key made with the organizer, or one of its
    named keys (whose last use is then noted). The lookup is by hash, so timing tells nothing."""
    if not is_plausible_key(key):
        return None
    organizer = await session.scalar(select(Organizer).where(Organizer.api_key_hash == hash_api_key(key)))
    return organizer if organizer is not None else await organizer_for_named_key(session, key)


# What an organizer may change about how buyers see them (the console's settings form).
PROFILE_FIELDS = ("name", "contact_email", "imprint_url", "terms_url")
# How Checkout bills their buyers: invoices, VAT ids, Stripe Tax, prices with or without tax.
BILLING_SWITCHES = ("invoices", "collect_tax_id", "automatic_tax", "prices_include_tax")
BILLING_FIELDS = (*BILLING_SWITCHES, "invoice_footer")
# The API may change the sign-in address too.
CHANGEABLE = ("email", *PROFILE_FIELDS, *BILLING_FIELDS)
# Stripe allows 5000 characters in an invoice footer; a few lines are what fits on the page.
FOOTER_MAX = 500


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 200 or has_control(value):
        raise Invalid(Text(N_("name must be 1 to 200 plain characters")), field="name")
    return value.strip()


def _link(value: object, field: str) -> str | None:
    """An http(s) URL with a host, or None for empty; buyers follow it, so nothing else passes."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a URL string or null", field=field)
    value = value.strip()
    try:
        parts = urlsplit(value) if len(value) <= 500 and not has_control(value) and " " not in value else None
    except ValueError:  # a host in brackets that is no IP address, or a bracket left open
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(Text(N_("%(name)s must be an http:// or https:// URL of at most 500 characters"), name=field),
                      field=field)
    return value


def _footer(value: object) -> str | None:
    """Text printed at the foot of each invoice: lines of plain text, or None for empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Invalid("invoice_footer must be text or null", field="invoice_footer")
    value = value.replace("\r\n", "\n").strip()
    if len(value) > FOOTER_MAX or has_control(value, allow_newlines=True):
        raise Invalid(f"invoice_footer must be at most {FOOTER_MAX} plain characters", field="invoice_footer")
    return value or None


async def update_profile(session: AsyncSession, organizer_id: uuid.UUID, data: Mapping[str, Any]) -> Organizer:
    """Change the fields present in `data` (the profile, the billing settings, and `email`, the sign-in address);
    unknown fields are refused, not ignored; Conflict for an address another organizer signs in with."""
    unknown = sorted(set(data) - set(CHANGEABLE))
    if unknown:
        raise Invalid(f"cannot change {', '.join(unknown)}; changeable: {', '.join(CHANGEABLE)}", field=unknown[0])
    organizer = await session.get(Organizer, organizer_id, with_for_update=True)
    if organizer is None:
        raise NotFound("no such organizer")
    if "name" in data:
        organizer.name = _name(data["name"])
    if "email" in data:
        await _change_address(session, organizer, data["email"])
    if "contact_email" in data:
        value = data["contact_email"]
        if value is not None and not isinstance(value, str):
            raise Invalid("contact_email must be an email address or null", field="contact_email")
        organizer.contact_email = email_address(value, field="contact_email") if value and value.strip() else None
    for field in ("imprint_url", "terms_url"):
        if field in data:
            setattr(organizer, field, _link(data[field], field))
    for field in BILLING_SWITCHES:
        if field in data:
            # JSON's true and false only: 0, 1, "yes" are refused, not guessed at.
            if not isinstance(data[field], bool):
                raise Invalid(f"{field} must be true or false", field=field)
            setattr(organizer, field, data[field])
    if "invoice_footer" in data:
        organizer.invoice_footer = _footer(data["invoice_footer"])
    await _flush(session, organizer.email)
    return organizer


# The languages the console speaks; "" (stored as NULL) follows the browser.
CONSOLE_LANGUAGES = ("en", "de")


async def set_console_language(session: AsyncSession, organizer_id: uuid.UUID, value: str) -> Organizer:
    """The organizer's choice of console language, or "" to follow the browser's preference."""
    if value not in ("", *CONSOLE_LANGUAGES):
        raise Invalid(f"console_language must be one of {', '.join(CONSOLE_LANGUAGES)}, or empty for the browser's",
                      field="console_language")
    organizer = await session.get(Organizer, organizer_id, with_for_update=True)
    if organizer is None:
        raise NotFound("no such organizer")
    organizer.console_language = value or None
    return organizer
