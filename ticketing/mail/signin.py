"""The organizer console's sign-in mail: the one-time link, as a plain-text and an HTML part."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import jinja2
from sqlalchemy import select

from ticketing.accounts import signin
from ticketing.db import utcnow
from ticketing.db.models import Organizer
from ticketing.jobs.registry import JobContext, PermanentError, job
from ticketing.mail.compose import BadAddress, mail_domain, one_line, recipient
from ticketing.mail.sending import create_mailer
from ticketing.settings import Settings

logger = logging.getLogger(__name__)

# A link lives 15 minutes: 6 tries (5 s doubling) cover the first few minutes of an SMTP
# hiccup; later than that the link would be dead on arrival, and the job skips it anyway.
SIGNIN_ATTEMPTS = 6

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("ticketing.mail", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def signin_mail(settings: Settings, organizer: Organizer, token: str, *, now: dt.datetime | None = None) -> EmailMessage:
    """The mail with a one-time sign-in link for `organizer`."""
    now = now or utcnow()
    context = {"organizer": organizer, "link": signin.link(settings.base_url, token), "base_url": settings.base_url,
               "minutes": int(signin.LIFETIME.total_seconds() // 60)}
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = recipient(organizer.email, organizer.name)
    message["Subject"] = one_line("Your sign-in link for the organizer console", 250)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<signin.{signin.hash_token(token)[:24]}@{mail_domain(settings)}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(_ENV.get_template("signin.txt").render(context))
    message.add_alternative(_ENV.get_template("signin.html").render(context), subtype="html")
    return message


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
        message = signin_mail(ctx.settings, organizer, token)
    except BadAddress as error:
        raise PermanentError(str(error)) from None
    await create_mailer(ctx.settings).send(message)
    logger.info("mail sent", extra={"kind": "signin", "organizer_id": str(organizer_id)})
