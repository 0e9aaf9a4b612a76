"""Attendance figures from the recorded stays: per ticket and per webinar.

A ticket's time present is the union of its stays (overlapping stays, from two tabs or a
breakout room, count once); its share is the part of that union inside the scheduled time,
over the scheduled time. A stay whose end never arrived counts until now, or until the
link stops working (`ends_at` + grace), whichever is earlier.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db import utcnow
from ticketing.db.models import AttendanceSession, DeviceMove, Organizer, Ticket, TicketDevice, Webinar
from ticketing.settings import Settings
from ticketing.webinars.service import get_own_webinar

Interval = tuple[dt.datetime, dt.datetime]

# A reloaded page joins again before Prosody notices the old connection is gone; stays of one
# ticket that overlap by less than this are one device reconnecting, not two devices.
RECONNECT_OVERLAP = dt.timedelta(seconds=60)

TWO_DEVICES_AT_ONCE = "two_devices_at_once"
MORE_DEVICES_THAN_ALLOWED = "more_devices_than_allowed"


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """The intervals merged where they overlap or touch, in order; empty ones dropped."""
    merged: list[Interval] = []
    for start, end in sorted(i for i in intervals if i[1] > i[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def total(intervals: Iterable[Interval]) -> dt.timedelta:
    return sum((end - start for start, end in intervals), dt.timedelta(0))


def clip(intervals: Iterable[Interval], low: dt.datetime, high: dt.datetime) -> list[Interval]:
    return [(max(s, low), min(e, high)) for s, e in intervals if min(e, high) > max(s, low)]


def peak(groups: Iterable[Sequence[Interval]]) -> int:
    """The most groups present at one moment, each group's intervals already merged."""
    points: list[tuple[dt.datetime, int]] = []
    for intervals in groups:
        for start, end in intervals:
            points += [(start, 1), (end, -1)]
    # At the same instant an end comes before a start: a hand-over is not an overlap.
    points.sort(key=lambda p: (p[0], p[1]))
    current = best = 0
    for _, step in points:
        current += step
        best = max(best, current)
    return best


@dataclasses.dataclass(frozen=True)
class Stay:
    joined_at: dt.datetime
    left_at: dt.datetime | None
    occupant_jid: str
    space: str

    def interval(self, until: dt.datetime) -> Interval:
        return self.joined_at, (self.left_at if self.left_at is not None else max(until, self.joined_at))


@dataclasses.dataclass(frozen=True)
class TicketAttendance:
    """What the organizer sees of one ticket's attendance."""

    stays: tuple[Stay, ...]
    first_join_at: dt.datetime | None
    last_leave_at: dt.datetime | None  # None while a stay is still open
    seconds_present: int
    seconds_scheduled_present: int
    scheduled_seconds: int
    concurrent_devices: int
    devices: int
    moves: int
    one_device: bool

    @property
    def minutes_present(self) -> int:
        return self.seconds_present // 60

    @property
    def percent_of_scheduled(self) -> int:
        """Whole percent of the scheduled time present (rounded down)."""
        return self.seconds_scheduled_present * 100 // self.scheduled_seconds if self.scheduled_seconds else 0

    def reaches(self, percent: int) -> bool:
        """Present at least `percent` of the scheduled time (exactly, not the rounded figure)."""
        return self.scheduled_seconds > 0 and self.seconds_scheduled_present * 100 >= percent * self.scheduled_seconds

    @property
    def present_now(self) -> bool:
        return any(s.left_at is None for s in self.stays)

    @property
    def shared_link(self) -> list[str]:
        """Signs that the link is shared: present from two devices at once, or opened on more
        browsers than one device per ticket allows (one, plus one for each move)."""
        signals = []
        if self.concurrent_devices >= 2:
            signals.append(TWO_DEVICES_AT_ONCE)
        if self.one_device and self.devices > 1 + self.moves:
            signals.append(MORE_DEVICES_THAN_ALLOWED)
        return signals


def ticket_attendance(stays: Sequence[Stay], webinar: Webinar, until: dt.datetime, *, devices: int = 0,
                      moves: int = 0) -> TicketAttendance:
    """The figures of one ticket's stays, open stays counted until `until`."""
    present = union(s.interval(until) for s in stays)
    scheduled = clip(present, webinar.starts_at, webinar.ends_at)
    by_occupant: dict[str, list[Interval]] = defaultdict(list)
    for stay in stays:
        start, end = stay.interval(until)
        by_occupant[stay.occupant_jid].append((start, end - RECONNECT_OVERLAP))
    return TicketAttendance(
        stays=tuple(sorted(stays, key=lambda s: (s.joined_at, s.occupant_jid))),
        first_join_at=min((s.joined_at for s in stays), default=None),
        last_leave_at=None if not stays or any(s.left_at is None for s in stays) else max(s.left_at for s in stays),
        seconds_present=int(total(present).total_seconds()),
        seconds_scheduled_present=int(total(scheduled).total_seconds()),
        scheduled_seconds=int((webinar.ends_at - webinar.starts_at).total_seconds()),
        concurrent_devices=peak(union(v) for v in by_occupant.values()),
        devices=devices,
        moves=moves,
        one_device=webinar.one_device,
    )


def counting_until(webinar: Webinar, settings: Settings, now: dt.datetime) -> dt.datetime:
    """Open stays count until now, but never past the moment the links stop working."""
    return min(now, webinar.ends_at + dt.timedelta(minutes=settings.join_grace_minutes))


async def _stays(session: AsyncSession, webinar_id: uuid.UUID) -> list[AttendanceSession]:
    return list(await session.scalars(select(AttendanceSession).where(AttendanceSession.webinar_id == webinar_id)))


async def attendance_by_ticket(session: AsyncSession, webinar: Webinar, settings: Settings, *,
                               now: dt.datetime | None = None) -> dict[uuid.UUID, TicketAttendance]:
    """Every ticket of the webinar with its figures (tickets that never came have none)."""
    until = counting_until(webinar, settings, now or utcnow())
    stays: dict[uuid.UUID, list[Stay]] = defaultdict(list)
    for row in await _stays(session, webinar.id):
        if row.ticket_id is not None:
            stays[row.ticket_id].append(Stay(row.joined_at, row.left_at, row.occupant_jid, row.space))
    ticket_ids = list(await session.scalars(select(Ticket.id).where(Ticket.webinar_id == webinar.id)))
    devices = dict((await session.execute(
        select(TicketDevice.ticket_id, func.count()).join(Ticket, Ticket.id == TicketDevice.ticket_id)
        .where(Ticket.webinar_id == webinar.id).group_by(TicketDevice.ticket_id)
    )).all())
    moves = dict((await session.execute(
        select(DeviceMove.ticket_id, func.count()).join(Ticket, Ticket.id == DeviceMove.ticket_id)
        .where(Ticket.webinar_id == webinar.id, DeviceMove.used_at.is_not(None)).group_by(DeviceMove.ticket_id)
    )).all())
    return {ticket_id: ticket_attendance(stays.get(ticket_id, []), webinar, until, devices=devices.get(ticket_id, 0),
                                         moves=moves.get(ticket_id, 0))
            for ticket_id in ticket_ids}


@dataclasses.dataclass(frozen=True)
class Summary:
    """The webinar at a glance."""

    webinar_id: uuid.UUID
    scheduled_minutes: int
    tickets: int
    attendees: int  # tickets that came at all
    median_minutes: float | int | None
    peak_concurrent: int  # ticket holders present at once
    occupants_without_ticket: int  # hosts, guests, hand-made tokens
    shared_link_tickets: int
    present_now: int


async def summary(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID, settings: Settings, *,
                  now: dt.datetime | None = None) -> Summary:
    """The per-webinar summary for its organizer (NotFound, Forbidden as for the webinar)."""
    now = now or utcnow()
    webinar = await get_own_webinar(session, organizer, webinar_id)
    figures = await attendance_by_ticket(session, webinar, settings, now=now)
    until = counting_until(webinar, settings, now)
    came = [f for f in figures.values() if f.stays]
    unticketed = {row.occupant_jid for row in await _stays(session, webinar.id) if row.ticket_id is None}
    return Summary(
        webinar_id=webinar.id,
        scheduled_minutes=int((webinar.ends_at - webinar.starts_at).total_seconds()) // 60,
        tickets=len(figures),
        attendees=len(came),
        median_minutes=statistics.median(f.minutes_present for f in came) if came else None,
        peak_concurrent=peak(union(s.interval(until) for s in f.stays) for f in came),
        occupants_without_ticket=len(unticketed),
        shared_link_tickets=sum(1 for f in figures.values() if f.shared_link),
        present_now=sum(1 for f in came if f.present_now),
    )


# Appended to each attendee row of GET /api/webinars/{id}/tickets, in this order (CSV columns too).
TICKET_COLUMNS = ("session_count", "first_join_at", "last_leave_at", "minutes_present", "percent_of_scheduled",
                  "present_now", "devices", "shared_link")


def ticket_fields(attended: TicketAttendance | None, *, csv: bool = False) -> dict[str, object]:
    """A ticket's attendance as the attendee list shows it; JSON also lists each stay."""
    if attended is None:
        fields: dict[str, object] = dict.fromkeys(TICKET_COLUMNS)
        fields.update(session_count=0, minutes_present=0, percent_of_scheduled=0, present_now=False, devices=0,
                      shared_link=[])
    else:
        fields = {
            "session_count": len(attended.stays),
            "first_join_at": attended.first_join_at,
            "last_leave_at": attended.last_leave_at,
            "minutes_present": attended.minutes_present,
            "percent_of_scheduled": attended.percent_of_scheduled,
            "present_now": attended.present_now,
            "devices": attended.devices,
            "shared_link": attended.shared_link,
        }
    if csv:
        fields["shared_link"] = " ".join(fields["shared_link"])  # type: ignore[arg-type]
        fields["present_now"] = "yes" if fields["present_now"] else "no"
        return fields
    fields["sessions"] = [{"joined_at": s.joined_at, "left_at": s.left_at, "breakout_room": s.space or None,
                           "occupant_jid": s.occupant_jid} for s in (attended.stays if attended else ())]
    return fields


async def for_tickets(session: AsyncSession, webinar_id: uuid.UUID, settings: Settings) -> dict[uuid.UUID, TicketAttendance]:
    """Each ticket's attendance for the attendee list (the caller has checked the webinar is the organizer's)."""
    webinar = await session.get(Webinar, webinar_id)
    if webinar is None:
        return {}
    return await attendance_by_ticket(session, webinar, settings)
