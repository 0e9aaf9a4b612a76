"""What a console session holds and the rules it follows, independent of how it is stored.

The session itself is an encrypted cookie (aiohttp-session's Fernet storage, set up by the
web layer): the organizer's id, a CSRF token and the time it was last seen. It ends after
12 idle hours or at sign-out. Every state-changing form carries the CSRF token.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import MutableMapping
from typing import Any

IDLE_SECONDS = 12 * 60 * 60
# A session's last-seen time is written back at most this often, so not every page view
# sends a new cookie; the idle limit is therefore exact to within this much.
TOUCH_SECONDS = 5 * 60
ORGANIZER = "organizer_id"
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


def sign_in(session: MutableMapping[str, Any], organizer_id: str, *, now: float | None = None) -> None:
    """Start a signed-in session: everything from before (a CSRF token too) is dropped."""
    session.clear()
    session[ORGANIZER] = organizer_id
    session[SEEN] = int(now if now is not None else time.time())
    csrf_token(session)


def signed_in_as(session: MutableMapping[str, Any], *, now: float | None = None) -> str | None:
    """The organizer id of a live session, or None; an idle one is cleared. Touches the
    last-seen time when it is older than TOUCH_SECONDS."""
    organizer_id = session.get(ORGANIZER)
    if not isinstance(organizer_id, str):
        return None
    now = now if now is not None else time.time()
    seen = session.get(SEEN)
    if not isinstance(seen, int) or now - seen > IDLE_SECONDS:
        session.clear()
        return None
    if now - seen > TOUCH_SECONDS:
        session[SEEN] = int(now)
    return organizer_id


def flash(session: MutableMapping[str, Any], message: str) -> None:
    """A one-line notice for the next page (after a redirect)."""
    session[FLASH] = message


def take_flash(session: MutableMapping[str, Any]) -> str | None:
    return session.pop(FLASH, None) if FLASH in session else None
