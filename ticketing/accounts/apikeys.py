"""API keys: several per organizer, each named, shown once and stored as a SHA-256 hash.

An organizer's first key (`organizers.api_key_hash`, made with the organizer) keeps working
beside these; both are looked up by hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransactionOrigin

from ticketing.db import utcnow
from ticketing.db.models import ApiKey, Organizer
from ticketing.errors import N_, Conflict, Invalid, NotFound, Text
from ticketing.inputs import has_control

KEY_PREFIX = "tk_"
MAX_KEY_CHARS = 512
PREFIX_LENGTH = 10  # "tk_" and 7 characters: enough to tell keys apart, far too few to guess one
# last_used_at is written at most this often per key, so busy API clients do not write on every call.
USE_GRANULARITY = dt.timedelta(minutes=1)
MAX_KEYS = 50


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_plausible_key(key: str) -> bool:
    """Whether `key` could be an API key at all: printable ASCII of a sane length. A header
    that is not UTF-8 reaches us with lone surrogates in it, which no hash can read."""
    return 0 < len(key) <= MAX_KEY_CHARS and key.isascii() and key.isprintable()


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 100 or has_control(value):
        raise Invalid(Text(N_("name must be 1 to 100 plain characters")), field="name")
    return value.strip()


async def list_keys(session: AsyncSession, organizer: Organizer) -> list[ApiKey]:
    """The organizer's live keys, newest first."""
    query = (select(ApiKey).where(ApiKey.organizer_id == organizer.id, ApiKey.revoked_at.is_(None))
             .order_by(ApiKey.created_at.desc(), ApiKey.id))
    return list(await session.scalars(query))


async def create_key(session: AsyncSession, organizer: Organizer, name: object) -> tuple[ApiKey, str]:
    """A new named key; returns it with the plain key, which is not kept anywhere."""
    name = _name(name)
    if len(await list_keys(session, organizer)) >= MAX_KEYS:
        raise Conflict(Text(N_("at most %(num)d keys at once; revoke one first"), num=MAX_KEYS))
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(organizer_id=organizer.id, name=name, prefix=key[:PREFIX_LENGTH], key_hash=hash_api_key(key),
                 created_at=utcnow())
    session.add(row)
    await session.flush()
    return row, key


async def revoke_key(session: AsyncSession, organizer: Organizer, key_id: uuid.UUID) -> ApiKey:
    """Revoke one of the organizer's keys at once; NotFound for another organizer's or a revoked one."""
    row = await session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.organizer_id == organizer.id,
                                                    ApiKey.revoked_at.is_(None)).with_for_update())
    if row is None:
        raise NotFound("no such API key")
    row.revoked_at = utcnow()
    await session.flush()
    return row


async def organizer_for_named_key(session: AsyncSession, key: str, *, now: dt.datetime | None = None) -> Organizer | None:
    """The organizer holding a live named key, noting when it was last used."""
    now = now or utcnow()
    row = (await session.execute(
        select(ApiKey.id, ApiKey.last_used_at, Organizer)
        .join(Organizer, Organizer.id == ApiKey.organizer_id)
        .where(ApiKey.key_hash == hash_api_key(key), ApiKey.revoked_at.is_(None))
    )).first()
    if row is None:
        return None
    key_id, last_used, organizer = row
    if last_used is None or now - last_used >= USE_GRANULARITY:
        await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now)
                              .execution_options(synchronize_session=False))
        # A lookup session (autobegun, closed without a commit) keeps the note only if it
        # commits here; a caller's own transaction commits it with everything else.
        transaction = session.sync_session.get_transaction()
        if transaction is not None and transaction.origin == SessionTransactionOrigin.AUTOBEGIN:
            await session.commit()
    return organizer
