"""The .ics invitation attached to ticket mails: one event per ticket, updated in place.

The UID is fixed per ticket and SEQUENCE follows the webinar's, so a calendar that holds
the invitation replaces it when the time changes instead of adding a second event.
"""

from __future__ import annotations

import datetime as dt

from icalendar import Calendar, Event, vCalAddress, vText

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
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")

    event = Event()
    event.add("uid", event_uid(ticket, domain))
    event.add("dtstamp", (now or utcnow()).replace(microsecond=0))
    event.add("dtstart", webinar.starts_at.astimezone(dt.UTC))
    event.add("dtend", webinar.ends_at.astimezone(dt.UTC))
    # A cancellation must not be older than the invitation it withdraws.
    event.add("sequence", webinar.sequence + 1 if cancel else webinar.sequence)
    event.add("summary", webinar.title)
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    event.add("transp", "OPAQUE")
    organizer = vCalAddress(f"mailto:{organizer_email}")
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{ticket.email}")
    attendee.params["ROLE"] = vText("REQ-PARTICIPANT")
    attendee.params["PARTSTAT"] = vText("ACCEPTED")
    attendee.params["RSVP"] = vText("FALSE")
    event.add("attendee", attendee)
    if link is not None and not cancel:
        event.add("location", link)
        event.add("url", link)
        description = f"Your personal join link: {link}"
        if webinar.description:
            description = f"{webinar.description}\n\n{description}"
        event.add("description", description)
    calendar.add_component(event)
    return calendar.to_ical()
