"""The waitlist's jobs: offering freed seats, letting an offer run out, its mails, and the
sweep that closes lists at the sales end and expires offers whose job is late.

Each job's work is one transaction that checks the state it changes, so a job run twice, or
run again after its worker died before marking it done, changes nothing more.
"""

from __future__ import annotations

import logging
from typing import Any

from ticketing.db import utcnow
from ticketing.db.models import Organizer, WaitlistEntry, WaitlistOutcome, Webinar
from ticketing.jobs.registry import JobContext, PermanentError, job, periodic
from ticketing.mail.compose import waitlist_mail
from ticketing.mail.jobs import MAIL_ATTEMPTS, _code, _send, _uuid
from ticketing.tickets.capacity import OFFER_JOB
from ticketing.tickets.service import hash_code
from ticketing.waitlist import service as waitlist

logger = logging.getLogger(__name__)


@job(OFFER_JOB)
async def offer_seats(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Offer the webinar's free seats to the first in line."""
    webinar_id = _uuid(payload, "webinar_id")
    async with ctx.sessionmaker.begin() as session:
        made = await waitlist.make_offers(session, webinar_id, now=utcnow())
    if made:
        logger.info("waitlist offers made", extra={"webinar_id": str(webinar_id), "count": len(made)})


@job(waitlist.EXPIRE_JOB)
async def expire_offer(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Let an offer whose time is up run out; its seats go to the next in line."""
    entry_id = _uuid(payload, "entry_id")
    async with ctx.sessionmaker.begin() as session:
        expired = await waitlist.expire_offer(session, entry_id, now=utcnow())
    if expired:
        logger.info("waitlist offer expired", extra={"entry_id": str(entry_id)})


def _still_current(entry: WaitlistEntry | None, what: str, code: str) -> str | None:
    """Why the mail should not go out any more, or None."""
    if entry is None:
        return "the entry no longer exists"
    if entry.code_hash != hash_code(code):
        return "a newer link replaced this one"
    # A confirmed person who joins again gets their (new) link; the confirm link shows the place.
    if what == waitlist.CONFIRM and entry.outcome is not None:
        return "ended already"
    if what == waitlist.OFFER and (entry.outcome is not None or not entry.held):
        return "the offer is over"
    if what == waitlist.EXPIRED and entry.outcome != WaitlistOutcome.EXPIRED:
        return "the offer was bought after all"
    return None


@job(waitlist.MAIL_JOB, max_attempts=MAIL_ATTEMPTS)
async def send_waitlist_mail(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail one of the list's messages, unless its link was replaced or it no longer applies."""
    entry_id, code, what = _uuid(payload, "entry_id"), _code(payload), payload.get("what")
    if what not in (waitlist.CONFIRM, waitlist.OFFER, waitlist.EXPIRED, waitlist.CLOSED):
        raise PermanentError(f"malformed payload: unknown waitlist mail {what!r}")
    async with ctx.sessionmaker() as session:
        entry = await session.get(WaitlistEntry, entry_id)
        skip = _still_current(entry, what, code)
        if skip is None:
            webinar = await session.get(Webinar, entry.webinar_id)
            organizer = await session.get(Organizer, webinar.organizer_id)
    if skip is not None:
        logger.info("mail skipped", extra={"kind": f"waitlist_{what}", "entry_id": str(entry_id), "reason": skip})
        return
    key = f"waitlist.{what}.{entry.id}.{entry.code_hash[:12]}"
    await _send(ctx, lambda: waitlist_mail(ctx.settings, entry, webinar, what, code, message_key=key,
                                           organizer=organizer))
    logger.info("mail sent", extra={"kind": f"waitlist_{what}", "entry_id": str(entry.id)})


@periodic("waitlist.sweep")
async def sweep(ctx: JobContext) -> None:
    """Close the lists whose sales have ended; expire offers whose expiry job is overdue."""
    now = utcnow()
    async with ctx.sessionmaker.begin() as session:
        closed = await waitlist.close_lists(session, now=now)
        due = await waitlist.due_offers(session, now=now)
    for entry_id in due:
        async with ctx.sessionmaker.begin() as session:
            await waitlist.expire_offer(session, entry_id, now=now)
    if closed:
        logger.info("waitlists closed", extra={"entries": closed})
