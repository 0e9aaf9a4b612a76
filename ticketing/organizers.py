"""Organizers: their API keys (shown once, stored as a SHA-256 hash) and the profile buyers see."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.accounts.apikeys import KEY_PREFIX, hash_api_key, is_plausible_key, organizer_for_named_key
from ticketing.db.models import Organizer
from ticketing.errors import Invalid, NotFound
from ticketing.inputs import email_address, has_control


async def create_organizer(session: AsyncSession, name: str, email: str) -> tuple[Organizer, str]:
    """Create an organizer; returns it with its API key, which is not kept anywhere."""
    name = name.strip()
    if not name or len(name) > 200 or has_control(name):
        raise Invalid("name must be 1 to 200 plain characters", field="name")
    email = email_address(email)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    organizer = Organizer(name=name, email=email, api_key_hash=hash_api_key(key))
    session.add(organizer)
    await session.flush()
    return organizer, key


async def organizer_for_key(session: AsyncSession, key: str) -> Organizer | None:
    """The organizer holding `key`, if any: the key made with the organizer, or one of its
    named keys (whose last use is then noted). The lookup is by hash, so timing tells nothing."""
    if not is_plausible_key(key):
        return None
    organizer = await session.scalar(select(Organizer).where(Organizer.api_key_hash == hash_api_key(key)))
    return organizer if organizer is not None else await organizer_for_named_key(session, key)


# What an organizer may change about how buyers see them; the sign-in address is not among them.
PROFILE_FIELDS = ("name", "contact_email", "imprint_url", "terms_url")


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 200 or has_control(value):
        raise Invalid("name must be 1 to 200 plain characters", field="name")
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
        raise Invalid(f"{field} must be an http:// or https:// URL of at most 500 characters", field=field)
    return value


async def update_profile(session: AsyncSession, organizer_id: uuid.UUID, data: Mapping[str, Any]) -> Organizer:
    """Change the profile fields present in `data`; unknown fields are refused, not ignored."""
    unknown = sorted(set(data) - set(PROFILE_FIELDS))
    if unknown:
        raise Invalid(f"cannot change {', '.join(unknown)}; changeable: {', '.join(PROFILE_FIELDS)}", field=unknown[0])
    organizer = await session.get(Organizer, organizer_id, with_for_update=True)
    if organizer is None:
        raise NotFound("no such organizer")
    if "name" in data:
        organizer.name = _name(data["name"])
    if "contact_email" in data:
        value = data["contact_email"]
        if value is not None and not isinstance(value, str):
            raise Invalid("contact_email must be an email address or null", field="contact_email")
        organizer.contact_email = email_address(value, field="contact_email") if value and value.strip() else None
    for field in ("imprint_url", "terms_url"):
        if field in data:
            setattr(organizer, field, _link(data[field], field))
    await session.flush()
    return organizer
