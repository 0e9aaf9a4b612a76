"""The console's attendee list: one page of a webinar's tickets with their orders, found by
name, email or order reference, filtered by state, sorted, and counted per state.

A webinar may have thousands of tickets, so searching, filtering, sorting and paging happen
in the database and only one page of rows is loaded.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.models import Order, Organizer, ReplacedCode, Ticket, TicketDelivery, TicketStatus
from ticketing.orders.references import id_range, order_reference
from ticketing.webinars.service import get_own_webinar

PAGE_SIZE = 50
# The states an organizer filters by; "attended" is a ticket whose link let someone into the room.
STATES = ("valid", "revoked", "mail_failed", "attended")
SORTS = ("bought", "name", "email", "state")
_STATE_RULES = {
    "valid": Ticket.status == TicketStatus.VALID,
    "revoked": Ticket.status == TicketStatus.REVOKED,
    "mail_failed": Ticket.delivery_status == TicketDelivery.FAILED,
    "attended": Ticket.first_joined_at.is_not(None),
}


@dataclasses.dataclass(frozen=True)
class Query:
    """What the organizer asked the list for; anything unknown falls back to the default."""

    search: str = ""
    state: str = ""
    sort: str = "bought"
    descending: bool = False
    page: int = 1

    @classmethod
    def parse(cls, params: Any) -> Query:
        """From a query string (a mapping of strings): bad values are ignored, never an error."""
        state = str(params.get("state") or "")
        sort = str(params.get("sort") or "bought")
        try:
            number = max(1, min(int(str(params.get("page") or "1")), 1_000_000))
        except ValueError:
            number = 1
        return cls(search=str(params.get("q") or "").strip()[:200], state=state if state in STATES else "",
                   sort=sort if sort in SORTS else "bought", descending=params.get("dir") == "desc", page=number)


@dataclasses.dataclass(frozen=True)
class Attendee:
    ticket: Ticket
    order: Order
    # When the buyer gave this seat to someone (each time a new holder was mailed), oldest first.
    reassigned_at: tuple[dt.datetime, ...] = ()

    @property
    def mail(self) -> str:
        """The ticket's stored delivery state as the console names it: "sent", "queued",
        "retrying" (queued, and the last try was refused for now: see `mail_error`) or "failed"."""
        state = self.ticket.delivery_status
        if state == TicketDelivery.QUEUED and self.ticket.delivery_error:
            return "retrying"
        return state.value

    @property
    def mail_error(self) -> str | None:
        return self.ticket.delivery_error

    @property
    def seat(self) -> int:
        """The seat's number on its order, as the buyer's order page counts them."""
        return self.ticket.seq + 1

    @property
    def reference(self) -> str:
        return order_reference(self.order.id)

    @property
    def bought_by(self) -> str | None:
        """The buyer's address when somebody else holds the seat (it was given away)."""
        buyer = (self.order.email or "").lower()
        return self.order.email if buyer and buyer != self.ticket.email.lower() else None


@dataclasses.dataclass(frozen=True)
class AttendeePage:
    rows: list[Attendee]
    query: Query
    matching: int  # tickets that match search and filter
    total: int  # all tickets of the webinar
    counts: dict[str, int]  # tickets per state of STATES, within the search

    @property
    def pages(self) -> int:
        return max(1, -(-self.matching // PAGE_SIZE))


def _search_rule(text: str):
    if not text:
        return None
    pattern = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rules = [func.lower(Ticket.name).like(pattern, escape="\\"), func.lower(Ticket.email).like(pattern, escape="\\"),
             func.lower(Order.email).like(pattern, escape="\\")]
    ids = id_range(text)
    if ids is not None:
        rules.append(Order.id.between(*ids))
    return or_(*rules)


def _order_by(query: Query) -> list[Any]:
    match query.sort:
        case "name":
            keys = [func.lower(Ticket.name), func.lower(Ticket.email)]
        case "email":
            keys = [func.lower(Ticket.email)]
        case "state":
            # What needs the organizer first: a valid ticket whose mail failed, then valid, revoked, expired.
            keys = [case((and_(Ticket.status == TicketStatus.VALID, Ticket.delivery_status == TicketDelivery.FAILED), 0),
                         (Ticket.status == TicketStatus.VALID, 1), (Ticket.status == TicketStatus.REVOKED, 2), else_=3)]
        case _:
            keys = [func.coalesce(Order.paid_at, Order.created_at), Ticket.created_at]
    keys = [k.desc() if query.descending else k.asc() for k in keys]
    # Ties broken the same way every time, so a ticket never shows on two pages.
    return [*keys, Ticket.order_id, Ticket.seq]


async def attendee_page(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID,
                        query: Query = Query()) -> AttendeePage:
    """One page of the webinar's attendees (NotFound, Forbidden as for the webinar); a page
    past the end shows the last one."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    base = and_(Ticket.webinar_id == webinar.id, Order.id == Ticket.order_id)
    search = _search_rule(query.search)
    within = and_(base, search) if search is not None else base
    # Counts per state (for the filter's labels) and in all, in one pass over the index.
    counted = (await session.execute(
        select(func.count(), *[func.coalesce(func.sum(case((rule, 1), else_=0)), 0) for rule in _STATE_RULES.values()])
        .select_from(Ticket).join(Order, Order.id == Ticket.order_id).where(within)
    )).one()
    counts = dict(zip(_STATE_RULES, (int(c) for c in counted[1:])))
    matching = counts[query.state] if query.state else int(counted[0])
    total = int(counted[0]) if search is None else int(await session.scalar(
        select(func.count()).select_from(Ticket).where(Ticket.webinar_id == webinar.id)) or 0)
    last = max(1, -(-matching // PAGE_SIZE))
    query = dataclasses.replace(query, page=min(query.page, last))
    rule = and_(within, _STATE_RULES[query.state]) if query.state else within
    rows = (await session.execute(
        select(Ticket, Order).join(Order, Order.id == Ticket.order_id).where(rule)
        .order_by(*_order_by(query)).limit(PAGE_SIZE).offset((query.page - 1) * PAGE_SIZE)
    )).all()
    history: dict[uuid.UUID, list[dt.datetime]] = {}
    if rows:
        for ticket_id, at in await session.execute(
                select(ReplacedCode.ticket_id, ReplacedCode.replaced_at)
                .where(ReplacedCode.ticket_id.in_([t.id for t, _ in rows]), ReplacedCode.reason == "reassigned")
                .order_by(ReplacedCode.replaced_at)):
            history.setdefault(ticket_id, []).append(at)
    return AttendeePage(rows=[Attendee(ticket=t, order=o, reassigned_at=tuple(history.get(t.id, ()))) for t, o in rows],
                        query=query, matching=matching, total=total, counts=counts)
