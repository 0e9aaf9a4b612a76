"""Composing mails from templates: a plain-text and an HTML part, and the .ics invitation.

Everything that reaches a header from user data (a title, a buyer's name or address) goes
through `one_line` or `Address` first, so a CR or LF in it can never start a new header.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from email.headerregistry import Address
from email.utils import parseaddr
from typing import Any

import jinja2

from ticketing import i18n
from ticketing.db import utcnow
from ticketing.db.models import Message, Order, Organizer, Registration, Ticket, WaitlistEntry, Webinar
from ticketing.mail.calendar import invitation
from ticketing.mail.message import Attachment, Mail, address, mail, sender_header, wire_address
from ticketing.orders.references import order_reference
from ticketing.settings import Settings
from ticketing.webinars.description import description_html, description_text

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")

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
        address = Address(display_name=one_line(name), addr_spec=email)
        wire_address(address.addr_spec)
    except (ValueError, IndexError) as error:  # UnicodeError (an unusable domain) is a ValueError
        raise BadAddress(f"not a usable email address: {email!r}"[:300]) from error
    return address


def mail_domain(settings: Settings) -> str:
    """The domain of the sender address: it names our Message-IDs and calendar UIDs."""
    return _sender(settings.mail_from)[2]


def sender_address(settings: Settings) -> str:
    return _sender(settings.mail_from)[1]


@functools.lru_cache(maxsize=8)
def _sender(mail_from: str) -> tuple[str, str, str]:
    """TICKETING_MAIL_FROM as the From header, the envelope address and its domain, parsed once."""
    _, address = parseaddr(mail_from)
    domain = re.sub(r"[^a-z0-9.-]", "", address.rpartition("@")[2].strip().lower()) or "ticketing.invalid"
    return sender_header(mail_from), address or f"no-reply@{domain}", domain


def join_link(settings: Settings, code: str) -> str:
    return f"{settings.base_url}/j/{code}"


def local_time(value: dt.datetime, zone_name: str, lang: str = i18n.DEFAULT) -> str:
    """`Thursday 31 January 2030, 18:00 (Europe/Berlin)`; fixed offsets read `UTC+01:00`."""
    return i18n.local_time(value, zone_name, lang)


def utc_time(value: dt.datetime, lang: str = i18n.DEFAULT) -> str:
    return i18n.utc_time(value, lang)


def money(amount: int, currency: str, lang: str = i18n.DEFAULT) -> str:
    return i18n.money(amount, currency, lang)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ticketing.mail", "templates"),
        # HTML parts are escaped (a title like <script> stays text); text parts are not HTML.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # Templates are part of the installed package: no stat of each file per mail.
        auto_reload=False,
    )
    i18n.install(env)
    # Organizers' Markdown (messages to attendees) rendered and cleaned as descriptions are.
    env.filters["markdown"] = description_html
    env.filters["markdown_text"] = description_text
    return env


_ENV = _environment()


def warm_up() -> None:
    """Compile every mail template and load the languages' data before the first mail needs
    them (the worker calls this as it starts), so no early mail pays for it."""
    for name in _ENV.list_templates():
        _ENV.get_template(name)
    i18n.warm_up()


def reply_to(organizer: Organizer | None) -> Address | None:
    """The organizer's contact address as a Reply-To, or None when it cannot be one."""
    if organizer is None or not organizer.reply_to:
        return None
    return _reply_to(organizer.reply_to, organizer.name)


@functools.lru_cache(maxsize=256)
def _reply_to(email: str, name: str) -> Address | None:
    # Parsed once per organizer: every mail of a flash sale carries the same one, and the
    # email package's address parser was 2 % of the worker's time.
    try:
        return recipient(email, name)
    except BadAddress:
        return None


def templated_mail(settings: Settings, *, to: Address, subject: str, message_key: str, template: str,
                   context: dict[str, Any], now: dt.datetime, lang: str = i18n.DEFAULT,
                   organizer: Organizer | None = None, attachment: Attachment | None = None) -> Mail:
    """A mail from the text and HTML templates `template`, in `lang`, to `to`; the organizer's
    contact address (when usable) as its Reply-To."""
    context = {"base_url": settings.base_url, "organizer": organizer, **i18n.gettext_context(lang), **context}
    answer = reply_to(organizer)
    return mail(
        sender=sender_address(settings), from_header=_sender(settings.mail_from)[0], to=to,
        # Buyers answer the organizer, who knows about their webinar, not our no-reply sender.
        extra_headers=(("Reply-To", address(answer)),) if answer is not None else (),
        subject=one_line(subject, 250), date=now,
        # Stable per ticket (or order) and kind: a mail sent again after a crash between the
        # SMTP server's acceptance and our bookkeeping carries the same id, which receivers dedupe.
        message_id=f"<{message_key}@{mail_domain(settings)}>",
        text=_ENV.get_template(f"{template}.txt").render(context),
        html=_ENV.get_template(f"{template}.html").render(context),
        attachment=attachment,
    )


def _invitation(settings: Settings, ticket: Ticket, webinar: Webinar, link: str | None, *, now: dt.datetime,
                cancel: bool = False) -> Attachment:
    """The ticket's calendar invitation (or its cancellation) as the mail's attachment."""
    ics = invitation(ticket, webinar, domain=mail_domain(settings), organizer_email=sender_address(settings),
                     link=link, cancel=cancel, now=now)
    method = "CANCEL" if cancel else "REQUEST"
    return Attachment(ics, f'text/calendar; method="{method}"; charset="utf-8"', "invite.ics")


def _(lang: str, text: str, **values: object) -> str:
    """A translated subject line, with the values put in."""
    return i18n.translations(lang).gettext(text) % values


def N_(text: str) -> str:
    """Marks a message for the catalog; it is translated later, when the language is known."""
    return text


# kind: (template, subject); the subjects are marked here and translated when a mail is built.
TICKET_MAILS = {
    "join": ("join", N_("Your link for %(title)s")),
    "assigned": ("join", N_("Your seat at %(title)s")),
    "resend": ("join", N_("Your new link for %(title)s")),
    "updated": ("join", N_("New time: %(title)s")),
    "reminder_24h": ("reminder", N_("Tomorrow: %(title)s")),
    "reminder_15m": ("reminder", N_("Starting in 15 minutes: %(title)s")),
}
REVOKED_SUBJECTS = {
    "cancelled": N_("Cancelled: %(title)s"),
    "refunded": N_("Refunded: %(title)s"),
    "disputed": N_("Ticket cancelled: %(title)s"),
    "organizer": N_("Ticket withdrawn: %(title)s"),
}


REFUND_DAYS = "5–10"  # Stripe: refunds reach the customer's account in 5 to 10 business days.


def ticket_mail(settings: Settings, kind: str, ticket: Ticket, webinar: Webinar, code: str, *,
                message_key: str, now: dt.datetime | None = None, organizer: Organizer | None = None,
                buyer: str | None = None) -> Mail:
    """A mail with the personal join link and the invitation: join, assigned (a seat the buyer
    gave to this person, named in `buyer`), resend, updated or a reminder."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    template, subject = TICKET_MAILS[kind]
    link = join_link(settings, code)
    context = {"kind": kind, "webinar": webinar, "ticket": ticket, "link": link,
               "early_minutes": settings.join_early_minutes, "buyer": buyer or ""}
    to = recipient(ticket.email, ticket.name)
    attachment = _invitation(settings, ticket, webinar, link, now=now)
    return templated_mail(settings, to=to,
                          subject=_(lang, subject, title=webinar.title), message_key=message_key, template=template,
                          context=context, now=now, lang=lang, organizer=organizer,
                          attachment=attachment)


def order_mail(settings: Settings, order: Order, webinar: Webinar, tickets: list[Ticket], order_code: str,
               join_code: str | None, *, message_key: str, now: dt.datetime | None = None,
               organizer: Organizer | None = None, lines: list[tuple[str, int, int]] | None = None) -> Mail:
    """The buyer's one mail about a paid order: what was bought and paid (by ticket type, as
    `lines` of name, seats and unit price, when the webinar sells several), the order page
    link, and for a one-seat order the personal join link with the invitation."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    link = join_link(settings, join_code) if join_code else None
    paid = order.amount_total if order.amount_total is not None else (order.expected_amount or 0)
    context = {"webinar": webinar, "order": order, "seats": order.quantity, "paid": paid,
               "unit_price": paid // order.quantity if order.quantity else paid, "lines": lines or [],
               "currency": (order.currency or webinar.currency), "link": link,
               "order_link": f"{settings.base_url}/o/{order_code}", "early_minutes": settings.join_early_minutes,
               "reference": order_reference(order.id)}
    to = recipient(order.email or "", order.buyer_name or "")
    attachment = None
    if link is not None and tickets:
        attachment = _invitation(settings, tickets[0], webinar, link, now=now)
    return templated_mail(settings, to=to,
                          subject=_(lang, N_("Your order for %(title)s"), title=webinar.title), message_key=message_key,
                          template="order", context=context, now=now, lang=lang, organizer=organizer,
                          attachment=attachment)


def revoked_mail(settings: Settings, ticket: Ticket, webinar: Webinar, reason: str, *,
                 message_key: str, now: dt.datetime | None = None, organizer: Organizer | None = None,
                 order: Order | None = None, refund_amount: int | None = None, given: list[Ticket] | None = None,
                 buyer_only: bool = False) -> Mail:
    """The ticket no longer admits its holder, and exactly why; no link, and a calendar
    cancellation. The buyer (not an attendee they gave the seat to) also reads what is
    refunded and when to expect it: `refund_amount`, or the whole order when it is refunded
    because the webinar was cancelled, and which of the seats they gave away went with it
    (`given`). With `buyer_only` the mail goes to the buyer of `ticket`, a seat somebody else
    held: no calendar cancellation, since the buyer never had that invitation."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    to_buyer = buyer_only or order is None or (order.email or "").lower() == (ticket.email or "").lower()
    if refund_amount is None and order is not None and reason in ("cancelled", "refunded"):
        refund_amount = order.amount_total if order.amount_total is not None else order.expected_amount
    currency = (order.currency if order is not None and order.currency else webinar.currency)
    context = {"webinar": webinar, "ticket": ticket, "reason": reason, "to_buyer": to_buyer,
               "refund_amount": refund_amount if to_buyer and refund_amount else None, "currency": currency,
               "refund_days": REFUND_DAYS, "given": given or [], "buyer_only": buyer_only}
    subject = REVOKED_SUBJECTS.get(reason, N_("Ticket cancelled: %(title)s"))
    if buyer_only and order is not None:
        to, attachment = recipient(order.email or "", order.buyer_name or ""), None
    else:
        to = recipient(ticket.email, ticket.name)
        attachment = _invitation(settings, ticket, webinar, None, now=now, cancel=True)
    return templated_mail(settings, to=to,
                          subject=_(lang, subject, title=webinar.title),
                          message_key=message_key, template="revoked", context=context, now=now, lang=lang,
                          organizer=organizer, attachment=attachment)


def order_refunded_mail(settings: Settings, order: Order, webinar: Webinar, reason: str, *,
                        message_key: str, now: dt.datetime | None = None,
                        organizer: Organizer | None = None) -> Mail:
    """Your payment was refunded and no ticket was issued, and why."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    amount = order.amount_total if order.amount_total is not None else order.expected_amount
    context = {"webinar": webinar, "order": order, "reason": reason,
               "amount": amount, "currency": order.currency or webinar.currency, "refund_days": REFUND_DAYS}
    return templated_mail(settings, to=recipient(order.email or "", order.buyer_name or ""),
                          subject=_(lang, "Refunded: %(title)s", title=webinar.title), message_key=message_key,
                          template="order_refunded", context=context, now=now, lang=lang, organizer=organizer)


def dispute_closed_mail(settings: Settings, order: Order, webinar: Webinar, organizer: Organizer, outcome: str, *,
                        message_key: str, now: dt.datetime | None = None) -> Mail:
    """To the organizer: a chargeback over one of their orders was decided ("won" or "lost")."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    subject = N_("Dispute won: %(title)s") if outcome == "won" else N_("Dispute lost: %(title)s")
    amount = order.amount_total if order.amount_total is not None else order.expected_amount or 0
    context = {"webinar": webinar, "order": order, "outcome": outcome, "amount": amount,
               "currency": order.currency or webinar.currency,
               "console_url": f"{settings.base_url}/org/webinars/{webinar.id}"}
    return templated_mail(settings, to=recipient(organizer.email, organizer.name),
                          subject=_(lang, subject, title=webinar.title), message_key=message_key,
                          template="dispute_closed", context=context, now=now, lang=lang)


def order_updated_mail(settings: Settings, order: Order, webinar: Webinar, *, message_key: str,
                       now: dt.datetime | None = None, organizer: Organizer | None = None) -> Mail:
    """The webinar moved: to a buyer whose seats are still on their order page, whose links stay."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    return templated_mail(settings, to=recipient(order.email or "", order.buyer_name or ""),
                          subject=_(lang, N_("New time: %(title)s"), title=webinar.title), message_key=message_key,
                          template="order_updated", context={"webinar": webinar, "order": order}, now=now, lang=lang,
                          organizer=organizer)


def order_reminder_mail(settings: Settings, order: Order, webinar: Webinar, kind: str, seats: int, *,
                        message_key: str, now: dt.datetime | None = None,
                        organizer: Organizer | None = None) -> Mail:
    """A reminder (24 hours or 15 minutes) to a buyer whose `seats` are still on their order page."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    subject = TICKET_MAILS[kind][1]
    return templated_mail(settings, to=recipient(order.email or "", order.buyer_name or ""),
                          subject=_(lang, subject, title=webinar.title), message_key=message_key,
                          template="order_reminder",
                          context={"webinar": webinar, "order": order, "kind": kind, "seats": seats},
                          now=now, lang=lang, organizer=organizer)


def confirmation_link(settings: Settings, code: str) -> str:
    return f"{settings.base_url}/r/{code}"


def confirm_registration_mail(settings: Settings, registration: Registration, webinar: Webinar, code: str, *,
                              message_key: str, now: dt.datetime | None = None,
                              organizer: Organizer | None = None) -> Mail:
    """The link that confirms a free registration (and takes its seat when opened)."""
    now = now or utcnow()
    lang = i18n.language(webinar.language)
    context = {"webinar": webinar, "link": confirmation_link(settings, code)}
    return templated_mail(settings, to=recipient(registration.email),
                          subject=_(lang, N_("Confirm your seat: %(title)s"), title=webinar.title),
                          message_key=message_key,
                          template="confirm_registration", context=context, now=now, lang=lang, organizer=organizer)


# What a waitlist mail says (its `what`): its subject, marked here and translated when built.
WAITLIST_SUBJECTS = {
    "confirm": N_("Confirm your place on the waitlist: %(title)s"),
    "offer": N_("A seat is free for you: %(title)s"),
    "expired": N_("Your offer has run out: %(title)s"),
    "closed": N_("The waitlist has closed: %(title)s"),
}


def waitlist_link(settings: Settings, code: str, page: str = "") -> str:
    return f"{settings.base_url}/wl/{code}{page}"


def waitlist_mail(settings: Settings, entry: WaitlistEntry, webinar: Webinar, what: str, code: str, *,
                  message_key: str, now: dt.datetime | None = None, organizer: Organizer | None = None) -> Mail:
    """A mail of the waitlist: the confirmation link, an offer (its personal checkout link and
    until when it holds the seats), an offer run out, or the list closed. Each has the link to
    the person's page, where they can leave the list."""
    lang = i18n.language(webinar.language)
    context = {"webinar": webinar, "entry": entry, "what": what,
               "confirm_link": waitlist_link(settings, code, "/confirm"),
               "page_link": waitlist_link(settings, code)}
    return templated_mail(settings, to=recipient(entry.email, entry.name),
                          subject=_(lang, WAITLIST_SUBJECTS[what], title=webinar.title), message_key=message_key,
                          template="waitlist", context=context, now=now or utcnow(), lang=lang, organizer=organizer)


def message_mail(settings: Settings, message: Message, webinar: Webinar, organizer: Organizer, *, email: str,
                 name: str, message_key: str, now: dt.datetime | None = None) -> Mail:
    """An organizer's message to one ticket holder: their subject and Markdown body, framed in
    the webinar's language (who writes, about which webinar, when it is) with the organizer's
    Reply-To and footer."""
    lang = i18n.language(webinar.language)
    context = {"webinar": webinar, "subject": message.subject, "body": message.body}
    return templated_mail(settings, to=recipient(email, name), subject=message.subject, message_key=message_key,
                          template="message", context=context, now=now or utcnow(), lang=lang, organizer=organizer)
