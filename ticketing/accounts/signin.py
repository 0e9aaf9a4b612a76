"""One-time sign-in links for the organizer console.

A link carries 256 random bits; the database keeps only their SHA-256. It is valid for
15 minutes and signs in once: using it is one conditional UPDATE, so two browsers racing
with the same link get one session between them. The plain token travels only in the
queued sign-in mail's job (dropped once the mail is out) or on the CLI's stdout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import secrets
import uuid

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import LoginToken, Organizer
from ticketing.errors import NotFound
from ticketing.inputs import email_address
from ticketing.jobs import enqueue

TOKEN_BYTES = 32
LIFETIME = dt.timedelta(minutes=15)
MAIL_KIND = "mail.signin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link(base_url: str, token: str) -> str:
    return f"{base_url}/org/login/{token}"


async def organizers_with_email(session: AsyncSession, email: str) -> list[Organizer]:
    """The organizers who sign in with `email` (compared without regard to case)."""
    query = select(Organizer).where(func.lower(Organizer.email) == email.strip().lower()).order_by(Organizer.created_at)
    return list(await session.scalars(query))


async def issue_token(session: AsyncSession, organizer_id: uuid.UUID, *, now: dt.datetime | None = None) -> str:
    """A new sign-in token for the organizer; returns the plain token (stored only hashed)."""
    now = now or utcnow()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.add(LoginToken(organizer_id=organizer_id, token_hash=hash_token(token), created_at=now,
                           expires_at=now + LIFETIME))
    await session.flush()
    return token


async def request_link(session: AsyncSession, email: str, *, now: dt.datetime | None = None,
                       language: str | None = None) -> int:
    """Queue a sign-in mail for every organizer with this address; how many is not for the
    page to say (it answers the same for an unknown address). `language` is the one the
    sign-in page spoke, for an organizer who chose none. Raises Invalid for a malformed address."""
    email = email_address(email)
    now = now or utcnow()
    organizers = await organizers_with_email(session, email)
    for organizer in organizers:
        token = await issue_token(session, organizer.id, now=now)
        await enqueue(session, MAIL_KIND, {"organizer_id": str(organizer.id), "code": token, "language": language},
                      dedupe_key=f"{MAIL_KIND}:{hash_token(token)[:32]}")
    return len(organizers)


async def cli_link(session: AsyncSession, email: str, base_url: str) -> str:
    """A sign-in link for the organizer with this address (the CLI's `organizer login-link`)."""
    email = email_address(email)
    organizers = await organizers_with_email(session, email)
    if not organizers:
        raise NotFound(f"no organizer signs in with {email}")
    if len(organizers) > 1:
        raise NotFound(f"{len(organizers)} organizers sign in with {email}; give each its own address first")
    return link(base_url, await issue_token(session, organizers[0].id))


class LinkState(enum.StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


@dataclasses.dataclass(frozen=True)
class LinkCheck:
    state: LinkState
    organizer_id: uuid.UUID | None = None


async def check_token(session: AsyncSession, token: str, *, now: dt.datetime | None = None) -> LinkCheck:
    """What a sign-in link is now, without using it (the page that asks to confirm)."""
    now = now or utcnow()
    row = await session.scalar(select(LoginToken).where(LoginToken.token_hash == hash_token(token)))
    if row is None or not secrets.compare_digest(row.token_hash, hash_token(token)):
        return LinkCheck(LinkState.UNKNOWN)
    if row.used_at is not None:
        return LinkCheck(LinkState.USED, row.organizer_id)
    if row.expires_at <= now:
        return LinkCheck(LinkState.EXPIRED, row.organizer_id)
    return LinkCheck(LinkState.VALID, row.organizer_id)


async def use_token(session: AsyncSession, token: str, *, now: dt.datetime | None = None) -> LinkCheck:
    """Use a sign-in link: VALID with the organizer's id the one time it works, else why not."""
    now = now or utcnow()
    result = await session.execute(
        update(LoginToken)
        .where(LoginToken.token_hash == hash_token(token), LoginToken.used_at.is_(None), LoginToken.expires_at > now)
        .values(used_at=now)
        .returning(LoginToken.organizer_id)
        .execution_options(synchronize_session=False)
    )
    organizer_id = result.scalar_one_or_none()
    if organizer_id is not None:
        return LinkCheck(LinkState.VALID, organizer_id)
    found = await check_token(session, token, now=now)
    # Not VALID here: the UPDATE above would have taken it.
    return found if found.state != LinkState.VALID else LinkCheck(LinkState.USED, found.organizer_id)


async def link_is_usable(session: AsyncSession, token: str, *, now: dt.datetime | None = None) -> bool:
    """Whether a queued sign-in mail still carries a link that works (else it is not sent)."""
    return (await check_token(session, token, now=now)).state == LinkState.VALID
