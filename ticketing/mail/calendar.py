"""The .ics invitation attached to ticket mails: one event per ticket, updated in place.

The UID is fixed per ticket and SEQUENCE follows the webinar's, so a calendar that holds
the invitation replaces it when the time changes instead of adding a second event.
"""

from __future__ import annotations

import datetime as dt
import functools
from urllib.parse import urlencode

from icalendar import Calendar, Event, vCalAddress, vDatetime, vText
from icalendar.parser import Contentline

from ticketing.db import utcnow
from ticketing.db.models import Ticket, Webinar

PRODID = "-//ticketing//webinar tickets//EN"


def event_uid(ticket: Ticket, domain: str) -> str:
    return f"ticket-{ticket.id}@{domain}"


def invitation(
    ticket: Ticket,
    webinar: Webinar,
    *,
    domain: str,
    organizer_email: str,
    link: str | None,
    cancel: bool = False,
    now: dt.datetime | None = None,
) -> bytes:
    """The iCalendar bytes: METHOD:REQUEST with the join link as location and in the
    description, or METHOD:CANCEL (no link) when the ticket no longer admits anyone."""
    head, tail = _shared(webinar.sequence, webinar.starts_at, webinar.ends_at, webinar.title, organizer_email, cancel)
    # What differs from one ticket to the next, as content lines escaped and folded by
    # icalendar's own functions; the rest is the same for every ticket of the webinar at this
    # time, and is serialised once.
    lines = [
        ("UID", vText(event_uid(ticket, domain)).to_ical().decode()),
        ("DTSTAMP", vDatetime((now or utcnow()).replace(microsecond=0).astimezone(dt.UTC)).to_ical().decode()),
        (_ATTENDEE, f"mailto:{ticket.email}"),
    ]
    if link is not None and not cancel:
        description = f"Your personal join link: {link}"
        if webinar.description:
            description = f"{webinar.description}\n\n{description}"
        lines += [("LOCATION", vText(link).to_ical().decode()), ("URL", link),
                  ("DESCRIPTION", vText(description).to_ical().decode())]
    return head + b"".join(Contentline(f"{name}:{value}").to_ical() + b"\r\n" for name, value in lines) + tail


_ATTENDEE = "ATTENDEE;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;RSVP=FALSE"
_END = b"END:VEVENT\r\n"


@functools.lru_cache(maxsize=256)
def _shared(sequence: int, starts_at: dt.datetime, ends_at: dt.datetime, title: str, organizer_email: str,
            cancel: bool) -> tuple[bytes, bytes]:
    """The calendar up to the end of the event's shared properties, and what follows them."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")
    event = Event()
    event.add("dtstart", starts_at.astimezone(dt.UTC))
    event.add("dtend", ends_at.astimezone(dt.UTC))
    # A cancellation must not be older than the invitation it withdraws.
    event.add("sequence", sequence + 1 if cancel else sequence)
    event.add("summary", title)
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", vCalAddress(f"mailto:{organizer_email}"))
    calendar.add_component(event)
    whole = calendar.to_ical()
    cut = whole.rindex(_END)
    return whole[:cut], whole[cut:]


def webinar_event(webinar: Webinar, *, domain: str, page_url: str, now: dt.datetime | None = None) -> bytes:
    """A plain calendar entry for the webinar (no personal link: that comes by mail), for the
    success page's add-to-calendar download."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    event = Event()
    event.add("uid", f"webinar-{webinar.id}@{domain}")
    event.add("dtstamp", (now or utcnow()).replace(microsecond=0))
    event.add("dtstart", webinar.starts_at.astimezone(dt.UTC))
    event.add("dtend", webinar.ends_at.astimezone(dt.UTC))
    event.add("sequence", webinar.sequence)
    event.add("summary", webinar.title)
    event.add("url", page_url)
    event.add("description", f"{page_url}\n\nYour personal join link is in your email.")
    calendar.add_component(event)
    return calendar.to_ical()


def google_calendar_url(webinar: Webinar, *, page_url: str) -> str:
    """Google Calendar's "add event" link for the webinar (times in UTC, the page as details)."""
    def stamp(value: dt.datetime) -> str:
        return value.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")

    query = urlencode({"action": "TEMPLATE", "text": webinar.title,
                       "dates": f"{stamp(webinar.starts_at)}/{stamp(webinar.ends_at)}", "details": page_url})
    return f"https://calendar.google.com/calendar/render?{query}"
