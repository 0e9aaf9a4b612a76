"""The waitlist of a sold-out webinar: joining (confirmed by a mailed link), leaving, offers
that hold freed seats for the first in line, their expiry, and the organizer's view.

An offer takes its seats with `tickets.capacity.take_seats` in the transaction that marks the
entry offered, so held seats count against capacity exactly as sold ones do; the offer's
checkout settles without taking them again (`orders.service.settle` converts the hold), and
an expired, declined or removed offer gives them back with `free_seats`, which queues the next
offer. Every person gets one personal link at a time (256 random bits, only the SHA-256 kept);
each mail carries a fresh one and the older link stops working.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import uuid

from sqlalchemy import and_, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing.db.dialect import insert
from ticketing.db.models import (
    Order,
    OrderStatus,
    Organizer,
    TicketType,
    WaitlistEntry,
    WaitlistOutcome,
    Webinar,
    WebinarStatus,
)
from ticketing.errors import N_, Conflict, Invalid, NotFound, Text
from ticketing.inputs import email_address, has_control
from ticketing.jobs import enqueue
from ticketing.orders import ticket_types
from ticketing.orders.service import check_quantity
from ticketing.orders.ticket_types import type_on_sale
from ticketing.tickets.capacity import OFFER_JOB, free_seats, take_seats
from ticketing.tickets.service import hash_code, new_code
from ticketing.webinars.sales import MIN_CHECKOUT_WINDOW, checkout_closes_at, refuse_if_closed, sales_state
from ticketing.webinars.service import get_own_webinar, get_webinar, seats_left, types_waited_for, waitlist_waiting

MAIL_JOB = "waitlist.mail"
EXPIRE_JOB = "waitlist.expire"
# A repeat join within this time sends nothing more: one mail, not a mail bomb.
RESEND_AFTER = dt.timedelta(minutes=1)
# An offer with less time than this before the checkouts close is not worth making: the list
# closes with the sales end instead.
SHORTEST_OFFER = dt.timedelta(minutes=10)
# A paid webinar's checkouts close this long before its sales end (Stripe's shortest session).
MIN_WINDOW_LOOKAHEAD = MIN_CHECKOUT_WINDOW
MAX_OFFERED = 10**9

# What each mail of the list says (the `what` of a mail job).
CONFIRM, OFFER, EXPIRED, CLOSED = "confirm", "offer", "expired", "closed"


def email_key(email: str) -> str:
    """One entry per mailbox however the address is capitalised."""
    return email.strip().lower()


def waiting_filter():
    """Confirmed, without an offer or an outcome: the people in line."""
    return and_(WaitlistEntry.confirmed_at.is_not(None), WaitlistEntry.outcome.is_(None),
                WaitlistEntry.offered_at.is_(None))


def in_line():
    """Place order: confirmation time, then id so that two at one instant keep one order."""
    return (WaitlistEntry.confirmed_at, WaitlistEntry.id)


async def _mail(session: AsyncSession, entry: WaitlistEntry, what: str, code: str) -> None:
    await enqueue(session, MAIL_JOB, {"entry_id": str(entry.id), "what": what, "code": code},
                  dedupe_key=f"{MAIL_JOB}:{entry.id}:{what}:{entry.code_hash[:16]}")


def _fresh_code(entry: WaitlistEntry) -> str:
    code, entry.code_hash = new_code()
    return code


async def can_join(session: AsyncSession, webinar: Webinar, now: dt.datetime, kind: TicketType | None = None) -> bool:
    """Whether the webinar's page offers the waitlist instead of Buy: a paid webinar whose list
    is on, sales are open, and no seat is left for the public (all sold or held, or people wait).
    With `kind`, the waitlist of that visible ticket type, sold out on its own (or people wait
    for it) while it is on sale."""
    if not webinar.waitlist:
        return False
    if sales_state(webinar, now) not in ("on_sale", "sold_out"):
        return False
    if kind is not None:
        if not webinar.typed or kind.hidden or kind.webinar_id != webinar.id or not type_on_sale(kind, webinar, now):
            return False
        return (ticket_types.seats_left(kind, webinar) == 0
                or kind.id in await types_waited_for(session, webinar))
    if webinar.capacity is None:
        return False
    return seats_left(webinar) == 0 or await waitlist_waiting(session, webinar)


def _name(value: str | None) -> str:
    name = (value or "").strip()
    if len(name) > 200:
        raise Invalid("name must be at most 200 characters", field="name")
    if has_control(name):
        raise Invalid("name must not contain control characters", field="name")
    return name


async def join(session: AsyncSession, webinar_id: uuid.UUID, email: str | None, *, name: str | None = None,
               quantity: object = 1, ticket_type_id: uuid.UUID | None = None, now: dt.datetime) -> None:
    """Put `email` on the webinar's waitlist: mail a confirmation link (nobody is in line before
    opening it). The same address again gets its link again, at most once a minute; the answer
    is the same whether or not it was on the list, so nobody learns who waits.

    Invalid for a bad address, name or quantity; Conflict when the webinar has no waitlist or is
    not sold out (buy instead) or sales have closed.
    """
    webinar = await get_webinar(session, webinar_id)
    refuse_if_closed(webinar, now)
    kind = None
    if ticket_type_id is not None:
        kind = await session.get(TicketType, ticket_type_id)
        if kind is None or kind.webinar_id != webinar.id or kind.hidden:
            raise NotFound("this webinar has no such ticket type")
    if not await can_join(session, webinar, now, kind):
        raise Conflict("seats of this webinar are on sale; buy one instead" if webinar.waitlist
                       else "this webinar has no waitlist", reason="no_waitlist")
    if not email or not email.strip():
        raise Invalid("enter the email address the link goes to", field="email")
    email, name, quantity = email_address(email), _name(name), check_quantity(quantity)
    if quantity != 1 and webinar.price_amount == 0 and not webinar.typed:
        raise Invalid("a free webinar takes one seat per address; each person joins with their own", field="quantity")
    code, code_hash = new_code()
    key = email_key(email)
    created = await session.execute(
        insert(session, WaitlistEntry)
        .values(id=uuid.uuid4(), webinar_id=webinar.id, ticket_type_id=ticket_type_id, email=email, email_key=key,
                name=name, quantity=quantity, code_hash=code_hash, held=False, sent_at=now, created_at=now)
        .on_conflict_do_nothing(index_elements=["webinar_id", "email_key"]))
    entry = await session.scalar(select(WaitlistEntry).where(WaitlistEntry.webinar_id == webinar.id,
                                                             WaitlistEntry.email_key == key).with_for_update())
    assert entry is not None
    if created.rowcount == 1:
        await _mail(session, entry, CONFIRM, code)
        return
    if now - entry.sent_at < RESEND_AFTER or entry.offered_at is not None and entry.outcome is None:
        return  # too soon, or an offer is out: its mail has the link
    if entry.outcome in (WaitlistOutcome.BOUGHT, WaitlistOutcome.REMOVED):
        return
    if entry.outcome == WaitlistOutcome.EXPIRED and entry.order_id is not None and await session.scalar(
            select(Order.status).where(Order.id == entry.order_id)) == OrderStatus.PENDING:
        return  # its checkout may still be paid (Stripe's half hour): that payment keeps the seats
    if entry.outcome is not None:
        # Back in line after leaving or letting an offer run out: at the end, confirmed anew.
        entry.outcome, entry.confirmed_at, entry.offered_at, entry.offered_until = None, None, None, None
        entry.order_id, entry.ended_at = None, None
    if entry.confirmed_at is None:
        entry.quantity, entry.name, entry.ticket_type_id = quantity, name or entry.name, ticket_type_id
    entry.code_hash, entry.sent_at = code_hash, now
    await _mail(session, entry, CONFIRM, code)


@dataclasses.dataclass(frozen=True)
class Place:
    """An entry as its person sees it: the webinar, the place in line (None once out of line)."""

    entry: WaitlistEntry
    webinar: Webinar
    position: int | None


async def _entry_of_code(session: AsyncSession, code: str, *, lock: bool = False) -> WaitlistEntry:
    wanted = hash_code(code)
    query = select(WaitlistEntry).where(WaitlistEntry.code_hash == wanted)
    entry = await session.scalar(query.with_for_update() if lock else query)
    if entry is None or not hmac.compare_digest(entry.code_hash, wanted):
        raise NotFound("this waitlist link is unknown, or a newer one was mailed to the same address",
                       reason="unknown_waitlist_link")
    return entry


async def webinar_of_code(session: AsyncSession, code: str) -> Webinar | None:
    """The webinar a waitlist link is for, so that its pages can speak the webinar's language."""
    try:
        entry = await _entry_of_code(session, code)
    except NotFound:
        return None
    return await session.get(Webinar, entry.webinar_id)


async def position(session: AsyncSession, entry: WaitlistEntry) -> int | None:
    """1 for the first in line; None when the entry is not in line (unconfirmed, offered, out)."""
    if entry.confirmed_at is None or entry.outcome is not None or entry.offered_at is not None:
        return None
    ahead = await session.scalar(
        select(func.count()).select_from(WaitlistEntry)
        .where(WaitlistEntry.webinar_id == entry.webinar_id, waiting_filter(), _same_list(entry),
               tuple_(*in_line()) < tuple_(entry.confirmed_at, entry.id)))
    return (ahead or 0) + 1


def _same_list(entry: WaitlistEntry):
    """The entries of the list `entry` is on: its ticket type's, or the webinar's own."""
    if entry.ticket_type_id is None:
        return WaitlistEntry.ticket_type_id.is_(None)
    return WaitlistEntry.ticket_type_id == entry.ticket_type_id


async def place(session: AsyncSession, code: str) -> Place:
    """What the personal link shows; NotFound for an unknown or replaced link."""
    entry = await _entry_of_code(session, code)
    return Place(entry, await get_webinar(session, entry.webinar_id), await position(session, entry))


async def confirm(session: AsyncSession, code: str, *, now: dt.datetime) -> Place:
    """Confirm the entry of the link (once; again changes nothing): it takes its place in line,
    and seats free at this moment are offered at once."""
    entry = await _entry_of_code(session, code, lock=True)
    webinar = await get_webinar(session, entry.webinar_id)
    if entry.confirmed_at is None and entry.outcome is None:
        refuse_if_closed(webinar, now)
        entry.confirmed_at = now
        await session.flush()
        await enqueue(session, OFFER_JOB, {"webinar_id": str(webinar.id)})
    return Place(entry, webinar, await position(session, entry))


async def _end(session: AsyncSession, entry: WaitlistEntry, outcome: WaitlistOutcome, now: dt.datetime) -> None:
    """Take the entry out of line for good; seats held for its offer go to the next in line."""
    held = entry.held
    entry.outcome, entry.held, entry.ended_at = outcome, False, now
    await session.flush()
    if held:
        await free_seats(session, entry.webinar_id, {await _type_of(session, entry): entry.quantity})


async def leave(session: AsyncSession, code: str, *, now: dt.datetime) -> Place:
    """Leave the list (or decline the offer): seats held for it are offered to the next at once."""
    webinar = await get_webinar(session, (await _entry_of_code(session, code)).webinar_id, for_update=True)
    entry = await _entry_of_code(session, code, lock=True)  # after the webinar, as the offer job
    if entry.outcome is None:
        await _end(session, entry, WaitlistOutcome.DECLINED, now)
        await session.refresh(webinar)  # its seats changed under the ORM's feet
    return Place(entry, webinar, None)


async def _type_of(session: AsyncSession, entry: WaitlistEntry) -> uuid.UUID:
    if entry.ticket_type_id is not None:
        return entry.ticket_type_id
    return (await ticket_types.default_type(session, entry.webinar_id)).id


def offer_until(webinar: Webinar, now: dt.datetime) -> dt.datetime | None:
    """When an offer made now runs out: after the webinar's offer hours, cut to the moment its
    checkouts close; None when too little time is left to make one."""
    until = min(now + dt.timedelta(hours=webinar.offer_hours), checkout_closes_at(webinar))
    return until if until - now >= SHORTEST_OFFER else None


async def _offer(session: AsyncSession, webinar: Webinar, entry: WaitlistEntry, until: dt.datetime,
                 now: dt.datetime, default_type: uuid.UUID | None = None) -> bool:
    """Hold the entry's seats for it and mail the offer; False when they are not free."""
    for kind, ends in await _kinds_for(session, webinar, entry, until, now, default_type):
        if await take_seats(session, webinar.id, {kind: entry.quantity}, scheduled_only=True):
            until = ends
            break
    else:
        return False
    # The offer sells (and its end gives back) seats of the type they were held in.
    entry.ticket_type_id = entry.ticket_type_id or (kind if webinar.typed else None)
    entry.offered_at, entry.offered_until, entry.held, entry.order_id = now, until, True, None
    code = _fresh_code(entry)
    await session.flush()
    await _mail(session, entry, OFFER, code)
    await enqueue(session, EXPIRE_JOB, {"entry_id": str(entry.id)}, due_at=until,
                  dedupe_key=f"{EXPIRE_JOB}:{entry.id}:{until.isoformat()}")
    return True


async def _kinds_for(session: AsyncSession, webinar: Webinar, entry: WaitlistEntry, until: dt.datetime,
                     now: dt.datetime, default_type: uuid.UUID | None) -> list[tuple[uuid.UUID, dt.datetime]]:
    """The types whose seats may be held for the entry, in the order to try them, each with
    when its offer runs out (`until`, or sooner when the type's own checkouts close first): its
    own type; for someone waiting for the webinar, the default type first, then the others, in
    page order. Only types a checkout could be started for, with an offer's shortest time left:
    an offer nobody can buy would hold seats for nothing."""
    if not webinar.typed:
        return [(entry.ticket_type_id or default_type or await _type_of(session, entry), until)]
    kinds = await ticket_types.types_of(session, webinar.id)
    own = entry.ticket_type_id is not None
    kinds = [k for k in kinds if k.id == entry.ticket_type_id] if own else sorted(kinds, key=lambda k: not k.is_default)
    found = []
    for kind in kinds:
        if not ticket_types.checkout_open(kind, webinar, now, revealed=own):
            continue
        closes = ticket_types.type_sales_end(kind, webinar) - (MIN_CHECKOUT_WINDOW if kind.price_amount else dt.timedelta())
        if min(until, closes) - now >= SHORTEST_OFFER:
            found.append((kind.id, min(until, closes)))
    return found


async def make_offers(session: AsyncSession, webinar_id: uuid.UUID, *, now: dt.datetime) -> list[WaitlistEntry]:
    """Offer the seats free right now to the first confirmed entries whose quantity fits, in
    line order. Idempotent: held seats count as taken, so running it again offers nothing more.

    The webinar's row lock keeps two runs for one webinar (two seats freed at once) in turn, so
    each sees the other's holds and two freed seats make two offers, never four.
    """
    webinar = await get_webinar(session, webinar_id, for_update=True)
    if not webinar.waitlist or webinar.status != WebinarStatus.SCHEDULED:
        return []
    until = offer_until(webinar, now)
    if until is None:
        return []
    # No capacity (any more): everyone in line gets an offer.
    free = MAX_OFFERED if webinar.capacity is None else webinar.capacity - webinar.seats_taken
    if free <= 0:
        return []
    made: list[WaitlistEntry] = []
    default = (await ticket_types.default_type(session, webinar.id)).id
    # A type's people first: seats of a type that came free are theirs; whatever is left of the
    # webinar's seats goes to those waiting for the webinar. `take_seats` keeps both capacities.
    query = (select(WaitlistEntry).where(WaitlistEntry.webinar_id == webinar.id, waiting_filter())
             .order_by(WaitlistEntry.ticket_type_id.is_(None), *in_line()).with_for_update())
    for entry in await session.scalars(query):
        if free <= 0:
            break
        if entry.quantity <= free and await _offer(session, webinar, entry, until, now, default):
            free -= entry.quantity
            made.append(entry)
    return made


async def expire_offer(session: AsyncSession, entry_id: uuid.UUID, *, now: dt.datetime) -> bool:
    """Let the entry's offer run out if its time is up and it is still held: its seats go to the
    next in line. True when this call expired it (a second call, or a paid offer, does nothing)."""
    webinar_id = await session.scalar(select(WaitlistEntry.webinar_id).where(WaitlistEntry.id == entry_id))
    if webinar_id is None:
        return False
    # The webinar's row before the entry's, as the offer job, an offer by hand and a late
    # payment taking seats lock them.
    await get_webinar(session, webinar_id, for_update=True)
    entry = await session.scalar(select(WaitlistEntry).where(WaitlistEntry.id == entry_id).with_for_update())
    if entry is None or entry.outcome is not None or not entry.held or entry.offered_until is None:
        return False
    if entry.offered_until > now:
        return False
    # The new link is set before `_end` writes the entry, so the row is written once: PostgreSQL
    # checks the order_id key again on a second write in one transaction, waiting on the order's
    # row, which a payment settling this offer holds while it waits for this entry (a deadlock).
    code = _fresh_code(entry)
    await _end(session, entry, WaitlistOutcome.EXPIRED, now)
    await _mail(session, entry, EXPIRED, code)
    return True


async def due_offers(session: AsyncSession, *, now: dt.datetime, limit: int = 500) -> list[uuid.UUID]:
    """Offers whose time is up but still hold seats (their expiry job is late or was lost)."""
    query = (select(WaitlistEntry.id).where(WaitlistEntry.held.is_(True), WaitlistEntry.outcome.is_(None),
                                            WaitlistEntry.offered_until <= now).limit(limit))
    return list(await session.scalars(query))


async def close_lists(session: AsyncSession, *, now: dt.datetime, limit: int = 500) -> int:
    """Close the lists of webinars whose checkouts have closed (or that are cancelled or over):
    everyone still waiting, confirmed or not, is out with `closed`, and the confirmed are told.
    Offers already out run to their (shortened) end. Returns how many entries it closed.

    Each webinar's row is locked before its entries, in the order the offer job takes them, so
    the two never wait on each other."""
    due = (select(WaitlistEntry.webinar_id).join(Webinar, Webinar.id == WaitlistEntry.webinar_id)
           .where(WaitlistEntry.outcome.is_(None), WaitlistEntry.offered_at.is_(None),
                  or_(Webinar.status != WebinarStatus.SCHEDULED, Webinar.ends_at <= now,
                      func.coalesce(Webinar.sales_end, Webinar.ends_at) <= now + MIN_WINDOW_LOOKAHEAD))
           .distinct())
    closed = 0
    for webinar_id in sorted(await session.scalars(due)):
        webinar = await get_webinar(session, webinar_id, for_update=True)
        if sales_state(webinar, now) in ("on_sale", "sold_out"):
            continue
        waiting = await session.scalars(
            select(WaitlistEntry).where(WaitlistEntry.webinar_id == webinar_id, WaitlistEntry.outcome.is_(None),
                                        WaitlistEntry.offered_at.is_(None))
            .order_by(*in_line()).limit(limit - closed).with_for_update())
        for entry in waiting:
            entry.outcome, entry.ended_at = WaitlistOutcome.CLOSED, now
            if entry.confirmed_at is not None:
                await _mail(session, entry, CLOSED, _fresh_code(entry))
            closed += 1
        if closed >= limit:
            break
    await session.flush()
    return closed


# ---------------------------------------------------------------- the organizer's side


@dataclasses.dataclass(frozen=True)
class Row:
    """An entry as the organizer sees it, with its place in line while it waits."""

    entry: WaitlistEntry
    position: int | None


@dataclasses.dataclass(frozen=True)
class Figures:
    waited: int  # confirmed entries, ever
    offered: int
    bought: int
    waiting: int  # in line now


async def list_entries(session: AsyncSession, organizer: Organizer, webinar_id: uuid.UUID
                       ) -> tuple[Webinar, list[Row]]:
    """The webinar's waitlist in line order (the confirmed first, then those not confirmed)."""
    webinar = await get_own_webinar(session, organizer, webinar_id)
    entries = list(await session.scalars(
        select(WaitlistEntry).where(WaitlistEntry.webinar_id == webinar.id)
        .order_by(WaitlistEntry.confirmed_at.is_(None), WaitlistEntry.confirmed_at, WaitlistEntry.created_at,
                  WaitlistEntry.id)))
    rows, place_ = [], 0
    for entry in entries:
        waiting = entry.confirmed_at is not None and entry.outcome is None and entry.offered_at is None
        place_ += waiting
        rows.append(Row(entry, place_ if waiting else None))
    return webinar, rows


def figures(rows: list[Row]) -> Figures:
    entries = [row.entry for row in rows]
    return Figures(waited=sum(e.confirmed_at is not None for e in entries),
                   offered=sum(e.offered_at is not None for e in entries),
                   bought=sum(e.outcome == WaitlistOutcome.BOUGHT for e in entries),
                   waiting=sum(row.position is not None for row in rows))


async def webinar_of_entry(session: AsyncSession, organizer: Organizer, entry_id: uuid.UUID) -> uuid.UUID:
    """The webinar of one of the organizer's entries; NotFound or Forbidden otherwise."""
    entry = await session.get(WaitlistEntry, entry_id)
    if entry is None:
        raise NotFound("no such waitlist entry")
    return (await get_own_webinar(session, organizer, entry.webinar_id)).id


async def _own_entry(session: AsyncSession, organizer: Organizer, entry_id: uuid.UUID) -> WaitlistEntry:
    # populate_existing: an entry read before the lock (offer_by_hand) is read again under it.
    entry = await session.scalar(select(WaitlistEntry).where(WaitlistEntry.id == entry_id).with_for_update()
                                 .execution_options(populate_existing=True))
    if entry is None:
        raise NotFound("no such waitlist entry")
    await get_own_webinar(session, organizer, entry.webinar_id)
    return entry


async def remove(session: AsyncSession, organizer: Organizer, entry_id: uuid.UUID, *, now: dt.datetime) -> WaitlistEntry:
    """Take an entry off the list; an offer's held seats go to the next in line. Conflict once
    the entry has an outcome."""
    await get_webinar(session, await webinar_of_entry(session, organizer, entry_id), for_update=True)
    entry = await _own_entry(session, organizer, entry_id)
    if entry.outcome is not None:
        raise Conflict(Text(N_("this entry is off the list already")), reason="ended")
    await _end(session, entry, WaitlistOutcome.REMOVED, now)
    return entry


async def offer_by_hand(session: AsyncSession, organizer: Organizer, entry_id: uuid.UUID, *,
                        now: dt.datetime) -> WaitlistEntry:
    """Offer seats to a chosen confirmed entry, out of turn. Conflict, with the reason, when it
    cannot be made: not confirmed, offered or ended already, sales closed, or too few seats free."""
    # The webinar's row before the entry's, as the offer job takes them: the other order deadlocks.
    webinar_id = await webinar_of_entry(session, organizer, entry_id)
    webinar = await get_webinar(session, webinar_id, for_update=True)
    entry = await _own_entry(session, organizer, entry_id)
    if entry.outcome is not None:
        raise Conflict(Text(N_("this entry is off the list already")), reason="ended")
    if entry.confirmed_at is None:
        raise Conflict(Text(N_("this entry is not confirmed yet")), reason="unconfirmed")
    if entry.offered_at is not None:
        raise Conflict(Text(N_("this entry has an offer already")), reason="offered")
    refuse_if_closed(webinar, now)
    until = offer_until(webinar, now)
    if until is None:
        raise Conflict(Text(N_("too little time is left before sales close to make an offer")),
                       reason="sales_closing")
    left = seats_left(webinar)
    if left is not None and left < entry.quantity or not await _offer(session, webinar, entry, until, now):
        raise Conflict(Text(N_("not enough seats are free for this entry (it waits for %(num)d, free now: %(left)d)"),
                            num=entry.quantity, left=left or 0), reason="no_seats")
    return entry


async def start_checkout(session: AsyncSession, code: str, *, now: dt.datetime) -> tuple[WaitlistEntry, Webinar]:
    """The entry and webinar of an offer that may go to checkout now; Conflict (reason
    "offer_gone") once it has expired, been declined or bought."""
    entry = await _entry_of_code(session, code, lock=True)
    webinar = await get_webinar(session, entry.webinar_id)
    if entry.outcome is not None or not entry.held or entry.offered_until is None or entry.offered_until <= now:
        raise Conflict("this offer is no longer open", reason="offer_gone")
    return entry, webinar


def offer_lines(entry: WaitlistEntry, default_type: uuid.UUID) -> dict[uuid.UUID, int]:
    return {entry.ticket_type_id or default_type: entry.quantity}
