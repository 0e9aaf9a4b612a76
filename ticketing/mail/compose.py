"""Composing mails from templates: a plain-text and an HTML part, and the .ics invitation.

Everything that reaches a header from user data (a title, a buyer's name or address) goes
through `one_line` or `Address` first, so a CR or LF in it can never start a new header.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

import jinja2
from babel.numbers import format_currency, get_currency_precision

from ticketing.db import utcnow
from ticketing.db.models import Order, Ticket, Webinar
from ticketing.mail import wire
from ticketing.mail.calendar import invitation
from ticketing.settings import Settings
from ticketing.webinars.service import zone

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")

REVOKED_BECAUSE = {
    "refunded": "your payment was refunded",
    "disputed": "the payment was disputed with your bank",
    "cancelled": "the organizer cancelled the webinar",
    "organizer": "the organizer withdrew it",
}
REFUNDED_BECAUSE = {
    "oversold": "the webinar sold out before your payment arrived",
    "cancelled": "the organizer cancelled the webinar",
}


class BadAddress(ValueError):
    """The recipient's address cannot be used in a mail header."""


def one_line(value: str, limit: int = 200) -> str:
    """Text safe for a header: control characters (CR and LF among them) become spaces."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def recipient(email: str, name: str = "") -> Address:
    """The To address; raises BadAddress for anything that is not one plain address."""
    email = email.strip()
    if not email or _CONTROL.search(email) or any(c.isspace() for c in email) or email.count("@") != 1:
        raise BadAddress(f"not a usable email address: {email!r}"[:300])
    try:
        return Address(display_name=one_line(name), addr_spec=email)
    except (ValueError, IndexError) as error:
        raise BadAddress(f"not a usable email address: {email!r}"[:300]) from error


def mail_domain(settings: Settings) -> str:
    """The domain of the sender address: it names our Message-IDs and calendar UIDs."""
    _, address = parseaddr(settings.mail_from)
    domain = address.rpartition("@")[2].strip().lower()
    return re.sub(r"[^a-z0-9.-]", "", domain) or "ticketing.invalid"


def sender_address(settings: Settings) -> str:
    _, address = parseaddr(settings.mail_from)
    return address or f"no-reply@{mail_domain(settings)}"


def join_link(settings: Settings, code: str) -> str:
    return f"{settings.base_url}/j/{code}"


def local_time(value: dt.datetime, zone_name: str) -> str:
    """`Saturday 31 January 2030, 18:00 (Europe/Berlin)`; fixed offsets read `UTC+01:00`."""
    label = zone_name if zone_name[:1] not in "+-" else f"UTC{zone_name}"
    local = value.astimezone(zone(zone_name))
    return f"{local:%A %d %B %Y, %H:%M} ({label})"


def utc_time(value: dt.datetime) -> str:
    return f"{value.astimezone(dt.UTC):%A %d %B %Y, %H:%M} UTC"


def money(amount: int, currency: str) -> str:
    code = currency.upper()
    return format_currency(Decimal(amount).scaleb(-get_currency_precision(code)), code, locale="en_US")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ticketing.mail", "templates"),
        # HTML parts are escaped (a title like <script> stays text); text parts are not HTML.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters.update(local_time=local_time, utc_time=utc_time, money=money)
    return env


_ENV = _environment()


def _message(settings: Settings, *, to: Address, subject: str, message_key: str, template: str,
             context: dict[str, Any], now: dt.datetime) -> EmailMessage:
    domain = mail_domain(settings)
    context = {"base_url": settings.base_url, **context}
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to
    message["Subject"] = one_line(subject, 250)
    message["Date"] = format_datetime(now)
    # Stable per ticket (or order) and kind: a mail sent again after a crash between the
    # SMTP server's acceptance and our bookkeeping carries the same id, which receivers dedupe.
    message["Message-ID"] = f"<{message_key}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message.set_content(_ENV.get_template(f"{template}.txt").render(context))
    message.add_alternative(_ENV.get_template(f"{template}.html").render(context), subtype="html")
    return message


def _attach_invitation(message: EmailMessage, ics: bytes, *, cancel: bool) -> None:
    method = "CANCEL" if cancel else "REQUEST"
    message.add_attachment(ics, maintype="text", subtype="calendar", filename="invite.ics",
                           params={"method": method, "charset": "utf-8"})


TICKET_MAILS = {
    # kind: (template, subject)
    "join": ("join", "Your link for {title}"),
    "resend": ("join", "Your new link for {title}"),
    "updated": ("join", "New time: {title}"),
    "reminder_24h": ("reminder", "Tomorrow: {title}"),
    "reminder_15m": ("reminder", "Starting in 15 minutes: {title}"),
}


def ticket_mail(settings: Settings, kind: str, ticket: Ticket, webinar: Webinar, code: str, *,
                message_key: str, now: dt.datetime | None = None) -> EmailMessage:
    """A mail with the personal join link and the invitation: join, resend, updated or a reminder."""
    now = now or utcnow()
    template, subject = TICKET_MAILS[kind]
    link = join_link(settings, code)
    context = {"kind": kind, "webinar": webinar, "ticket": ticket, "link": link,
               "early_minutes": settings.join_early_minutes}
    to = recipient(ticket.email, ticket.name)
    ics = invitation(ticket, webinar, domain=mail_domain(settings), organizer_email=sender_address(settings),
                     link=link, now=now)
    # The mails a sale sends by the thousand are assembled as bytes (mail/wire.py): the same
    # headers, parts and invitation as _message and _attach_invitation make, at a fraction
    # of the cost of the email package's object model.
    context = {"base_url": settings.base_url, **context}
    return wire.build(
        from_=settings.mail_from, sender=sender_address(settings), to=to,
        headers=[("Subject", one_line(subject.format(title=webinar.title), 250)), ("Date", format_datetime(now)),
                 ("Message-ID", f"<{message_key}@{mail_domain(settings)}>"),
                 ("Auto-Submitted", "auto-generated"), ("X-Auto-Response-Suppress", "All")],
        text=_ENV.get_template(f"{template}.txt").render(context),
        html=_ENV.get_template(f"{template}.html").render(context),
        attachment=(ics, 'text/calendar; charset="utf-8"; method="REQUEST"', "invite.ics"),
    )


def revoked_mail(settings: Settings, ticket: Ticket, webinar: Webinar, reason: str, *,
                 message_key: str, now: dt.datetime | None = None) -> EmailMessage:
    """Your ticket no longer admits you, and why; no link, and a calendar cancellation."""
    now = now or utcnow()
    because = REVOKED_BECAUSE.get(reason, "it was withdrawn")
    context = {"webinar": webinar, "ticket": ticket, "reason": reason, "because": because}
    message = _message(settings, to=recipient(ticket.email, ticket.name), subject=f"Ticket cancelled: {webinar.title}",
                       message_key=message_key, template="revoked", context=context, now=now)
    ics = invitation(ticket, webinar, domain=mail_domain(settings), organizer_email=sender_address(settings),
                     link=None, cancel=True, now=now)
    _attach_invitation(message, ics, cancel=True)
    return message


def order_refunded_mail(settings: Settings, order: Order, webinar: Webinar, reason: str, *,
                        message_key: str, now: dt.datetime | None = None) -> EmailMessage:
    """Your payment was refunded and no ticket was issued, and why."""
    now = now or utcnow()
    because = REFUNDED_BECAUSE.get(reason, "the order could not be fulfilled")
    amount = order.amount_total if order.amount_total is not None else order.expected_amount
    context = {"webinar": webinar, "order": order, "reason": reason, "because": because,
               "amount": amount, "currency": order.currency or webinar.currency}
    return _message(settings, to=recipient(order.email or "", order.buyer_name or ""),
                    subject=f"Refunded: {webinar.title}", message_key=message_key, template="order_refunded",
                    context=context, now=now)
