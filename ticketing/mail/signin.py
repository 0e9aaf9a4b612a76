"""The organizer console's sign-in mail: the one-time link, as a plain-text and an HTML part."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from sqlalchemy import select

from ticketing import i18n
from ticketing.accounts import signin
from ticketing.db import utcnow
from ticketing.db.models import Organizer
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.mail.compose import BadAddress, recipient, templated_mail
from ticketing.mail.message import Mail
from ticketing.mail.sending import create_mailer
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

# A link lives 15 minutes: 6 tries (5 s doubling) cover the first few minutes of an SMTP
# hiccup; later than that the link would be dead on arrival, and the job skips it anyway.
SIGNIN_ATTEMPTS = 6


def signin_mail(settings: Settings, organizer: Organizer, token: str, *, now: dt.datetime | None = None,
                language: str | None = None) -> Mail:
    """The mail with a one-time sign-in link for `organizer`, in the console's language: the
    organizer's choice, else the one the sign-in page spoke."""
    lang = i18n.language(organizer.console_language or language)
    context = {"organizer": organizer, "link": signin.link(settings.base_url, token),
               "minutes": int(signin.LIFETIME.total_seconds() // 60)}
    return templated_mail(settings, to=recipient(organizer.email, organizer.name),
                          subject=i18n.translations(lang).gettext("Your sign-in link for the organizer console"),
                          message_key=f"signin.{signin.hash_token(token)[:24]}", template="signin", context=context,
                          now=now or utcnow(), lang=lang)


@job(signin.MAIL_KIND, max_attempts=SIGNIN_ATTEMPTS)
async def send_signin(ctx: JobContext, payload: dict[str, Any]) -> None:
    """Mail a sign-in link, unless it has been used or has expired meanwhile."""
    token = payload.get("code")
    try:
        organizer_id = uuid.UUID(str(payload.get("organizer_id")))
    except ValueError:
        raise PermanentError("malformed payload: organizer_id is not an id") from None
    if not isinstance(token, str) or not token:
        raise PermanentError("malformed payload: the sign-in token is missing")
    async with ctx.sessionmaker() as session:
        organizer = await session.scalar(select(Organizer).where(Organizer.id == organizer_id))
        usable = organizer is not None and await signin.link_is_usable(session, token)
    if not usable:
        logger.info("sign-in mail skipped: the link is used, expired or gone", extra={"organizer_id": str(organizer_id)})
        return
    try:
        language = payload.get("language")
        message = signin_mail(ctx.settings, organizer, token, language=language if isinstance(language, str) else None)
    except BadAddress as error:
        raise PermanentError(str(error)) from None
    await create_mailer(ctx.settings).send(message)
    logger.info("mail sent", extra={"kind": "signin", "organizer_id": str(organizer_id)})
