"""Organizers and their API keys (shown once, stored as a SHA-256 hash)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.models import Organizer
from ticketing.errors import Invalid
from ticketing.inputs import email_address, has_control

KEY_PREFIX = "tk_"
MAX_KEY_CHARS = 512


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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


def is_plausible_key(key: str) -> bool:
    """Whether `key` could be an API key at all: printable ASCII of a sane length. A header
    that is not UTF-8 reaches us with lone surrogates in it, which no hash can read."""
    return 0 < len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable()


async def organizer_for_key(session: AsyncSession, key: str) -> Organizer | None:
    """The organizer holding `key`, if any. The lookup is by hash, so timing tells nothing."""
    if not is_plausible_key(key):
        return None
    return await session.scalar(select(Organizer).where(Organizer.api_key_hash == hash_api_key(key)))
