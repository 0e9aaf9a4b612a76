"""When a webinar is on sale: its status, its sales end and its end. Pure functions, no I/O,
shared by checkout, the buyer's page, free registrations and every path that settles a payment."""

from __future__ import annotations

import datetime as dt

from ticketing.db.models import Webinar, WebinarStatus
from ticketing.errors import Conflict

# Stripe creates a Checkout Session only with `expires_at` 30 minutes to 24 hours ahead, so a
# paid checkout needs at least this much time before the sales end.
MIN_CHECKOUT_WINDOW = dt.timedelta(minutes=30)


def sales_end(webinar: Webinar) -> dt.datetime:
    """When sales close: the webinar's `sales_end`, or its `ends_at` when none was set."""
    return webinar.sales_end if webinar.sales_end is not None else webinar.ends_at


def is_on_sale(webinar: Webinar, at: dt.datetime) -> bool:
    """True when a seat of `webinar` may be sold at the moment `at`: the webinar is scheduled
    (not cancelled or ended) and `at` is before both its sales end and its end.

    Seats left are not part of it (the seat is taken separately, atomically). A payment is
    kept only when the webinar was on sale when the checkout completed and has not ended
    since; anything else is refunded (`ticketing.orders.service.settle`).
    """
    return webinar.status == WebinarStatus.SCHEDULED and at < sales_end(webinar) and at < webinar.ends_at


def checkout_closes_at(webinar: Webinar) -> dt.datetime:
    """The last moment a new checkout may start, which buyers are shown as the sales close:
    the sales end, less the shortest Checkout Session Stripe allows for a paid webinar (a free
    one has no Stripe session), and never after the webinar's end."""
    end = sales_end(webinar)
    return min(end - MIN_CHECKOUT_WINDOW if webinar.price_amount > 0 else end, webinar.ends_at)


def sales_state(webinar: Webinar, now: dt.datetime) -> str:
    """Where the webinar's sales stand now, in one word: "cancelled", "ended", "sales_closed",
    "sold_out" or "on_sale" (what pages show; `closed_reason` words the first three)."""
    if webinar.status == WebinarStatus.CANCELLED:
        return "cancelled"
    if webinar.status == WebinarStatus.ENDED or webinar.ends_at <= now:
        return "ended"
    if now >= checkout_closes_at(webinar):
        return "sales_closed"
    if webinar.capacity is not None and webinar.seats_taken >= webinar.capacity:
        return "sold_out"
    return "on_sale"


CLOSED_BECAUSE = {
    "cancelled": "this webinar has been cancelled",
    "ended": "this webinar has ended",
    "sales_closed": "sales have closed for this webinar",
}


def closed_reason(webinar: Webinar, now: dt.datetime) -> str | None:
    """Why no new checkout or registration can start now, or None while one can (seats aside)."""
    return CLOSED_BECAUSE.get(sales_state(webinar, now))


def refuse_if_closed(webinar: Webinar, now: dt.datetime) -> None:
    """Raise Conflict (its reason the sales state) when no new checkout or registration can start now."""
    state = sales_state(webinar, now)
    if state in CLOSED_BECAUSE:
        raise Conflict(CLOSED_BECAUSE[state], reason=state)


def checkout_expires_at(webinar: Webinar, now: dt.datetime, lifetime: dt.timedelta) -> dt.datetime:
    """When a Checkout Session started now must expire: after `lifetime`, but never after the
    sales end, so no session can complete once sales have closed."""
    return min(now + lifetime, sales_end(webinar))
