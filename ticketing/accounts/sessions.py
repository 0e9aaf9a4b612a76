"""What a console session holds and the rules it follows, independent of how it is stored.

The session itself is an encrypted cookie (aiohttp-session's Fernet storage, set up by the
web layer): the id of a `console_sessions` row, a CSRF token and the time it was last seen.
It ends after 12 idle hours, or at sign-out, which also ends the row, so a copy of the
cookie stops working too. Every state-changing form carries the CSRF token.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import ConsoleSession, Organizer

IDLE_SECONDS = 12 * 60 * 60
# A session's last-seen time is written back at most this often, so not every page view
# sends a new cookie; the idle limit is therefore exact to within this much.
TOUCH_SECONDS = 5 * 60
SESSION_ID = "sid"
CSRF = "csrf"
SEEN = "seen"
FLASH = "flash"


def fernet_key(secret: str) -> bytes:
    """The Fernet key (32 bytes, URL-safe base64) derived from TICKETING_SESSION_KEY."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"ticketing-session:" + secret.encode()).digest())


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, made on first use."""
    token = session.get(CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session[CSRF] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], sent: object) -> bool:
    """Whether a form's token is this session's, compared in constant time."""
    expected = session.get(CSRF)
    return (isinstance(expected, str) and bool(expected) and isinstance(sent, str)
            and secrets.compare_digest(expected.encode(), sent.encode()))


def sign_in(session: MutableMapping[str, Any], session_id: uuid.UUID, *, now: float | None = None) -> None:
    """Make the cookie a signed-in one: everything from before (a CSRF token too) is dropped."""
    session.clear()
    session[SESSION_ID] = str(session_id)
    session[SEEN] = int(now if now is not None else time.time())
    csrf_token(session)


def signed_in_as(session: MutableMapping[str, Any], *, now: float | None = None) -> uuid.UUID | None:
    """The console session id a cookie names, unless it has been idle too long (then it is
    cleared). Touches the last-seen time when it is older than TOUCH_SECONDS."""
    try:
        session_id = uuid.UUID(str(session.get(SESSION_ID)))
    except ValueError:
        return None
    now = now if now is not None else time.time()
    seen = session.get(SEEN)
    if not isinstance(seen, int) or now - seen > IDLE_SECONDS:
        session.clear()
        return None
    if now - seen > TOUCH_SECONDS:
        session[SEEN] = int(now)
    return session_id


def flash(session: MutableMapping[str, Any], message: str) -> None:
    """A one-line notice for the next page (after a redirect)."""
    session[FLASH] = message


def take_flash(session: MutableMapping[str, Any]) -> str | None:
    return session.pop(FLASH, None) if FLASH in session else None


async def start(db: AsyncSession, organizer_id: uuid.UUID, *, now: dt.datetime | None = None) -> uuid.UUID:
    """A new console session for the organizer; its id goes into the cookie."""
    row = ConsoleSession(organizer_id=organizer_id, created_at=now or utcnow())
    db.add(row)
    await db.flush()
    return row.id


async def organizer_of_session(db: AsyncSession, session_id: uuid.UUID) -> Organizer | None:
    """The organizer of a console session that has not been ended."""
    return await db.scalar(
        select(Organizer).join(ConsoleSession, ConsoleSession.organizer_id == Organizer.id)
        .where(ConsoleSession.id == session_id, ConsoleSession.ended_at.is_(None))
    )


async def end(db: AsyncSession, session_id: uuid.UUID, *, now: dt.datetime | None = None) -> None:
    """Sign out: the session stops working, wherever its cookie is."""
    await db.execute(update(ConsoleSession).where(ConsoleSession.id == session_id, ConsoleSession.ended_at.is_(None))
                     .values(ended_at=now or utcnow()).execution_options(synchronize_session=False))
