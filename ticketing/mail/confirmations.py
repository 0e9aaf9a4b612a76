"""The mail that confirms a free registration: it carries the confirmation link, whose plain
code lives only in this job's payload (dropped once the job is done)."""

from __future__ import annotations

import logging
from typing import Any

from ticketing.db.models import Organizer
from ticketing.jobs.registry import JobContext, job
from ticketing.mail.compose import confirm_registration_mail
from ticketing.mail.jobs import MAIL_ATTEMPTS, _code, _send, _uuid
from ticketing.orders.registrations import CONFIRM_MAIL, pending_confirmation
from ticketing.tickets.service import hash_code

logger = logging.getLogger(__name__)


@job(CONFIRM_MAIL, max_attempts=MAIL_ATTEMPTS)
async def send_confirmation(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail the confirmation link, unless it was replaced or confirmed meanwhile."""
    registration_id, code = _uuid(payload, "registration_id"), _code(payload)
    async with ctx.sessionmaker() as session:
        found = await pending_confirmation(session, registration_id, code)
        organizer = None if isinstance(found, str) else await session.get(Organizer, found[1].organizer_id)
    if isinstance(found, str):
        logger.info("mail skipped", extra={"kind": "confirm_registration", "registration_id": str(registration_id),
                                           "reason": found})
        return
    registration, webinar = found
    key = f"confirm.{registration.id}.{hash_code(code)[:12]}"
    await _send(ctx, lambda: confirm_registration_mail(ctx.settings, registration, webinar, code, message_key=key,
                                                             organizer=organizer))
    logger.info("mail sent", extra={"kind": "confirm_registration", "registration_id": str(registration.id)})
