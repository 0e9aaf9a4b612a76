"""Where a webinar stands, as the console's list says it."""

from __future__ import annotations

import datetime as dt

from ticketing.db.models import Webinar, WebinarStatus
from ticketing.webinars.figures import status_label
from ticketing.webinars.sales import closed_reason

START = dt.datetime(2030, 1, 31, 18, 0, tzinfo=dt.UTC)


def _webinar(**values) -> Webinar:
    fields = {"starts_at": START, "ends_at": START + dt.timedelta(hours=1), "capacity": 10, "seats_taken": 0,
              "price_amount": 2500,
              "status": WebinarStatus.SCHEDULED}
    fields.update(values)
    return Webinar(**fields)


def test_status_labels():
    before = START - dt.timedelta(days=1)
    assert status_label(_webinar(), now=before) == "on sale"
    assert status_label(_webinar(capacity=None, seats_taken=500), now=before) == "on sale"
    assert status_label(_webinar(seats_taken=10), now=before) == "sold out"
    assert status_label(_webinar(), now=START + dt.timedelta(minutes=5)) == "live"
    assert status_label(_webinar(), now=START + dt.timedelta(hours=2)) == "ended"
    assert status_label(_webinar(status=WebinarStatus.ENDED), now=before) == "ended"
    assert status_label(_webinar(status=WebinarStatus.CANCELLED), now=START) == "cancelled"


def test_sales_closed_by_the_sales_end_follow_the_buyers_rule():
    """The label says "sales closed" exactly when the buyer's page does (`sales.closed_reason`):
    from the sales end, and for a paid webinar from 30 minutes before it."""
    sales_end = START - dt.timedelta(days=1)
    paid = _webinar(sales_end=sales_end, price_amount=2500)
    free = _webinar(sales_end=sales_end, price_amount=0)
    assert status_label(paid, now=sales_end - dt.timedelta(minutes=31)) == "on sale"
    assert status_label(paid, now=sales_end - dt.timedelta(minutes=30)) == "sales closed"
    assert status_label(free, now=sales_end - dt.timedelta(minutes=1)) == "on sale"
    assert status_label(free, now=sales_end) == "sales closed"
    for at in (sales_end - dt.timedelta(hours=2), sales_end - dt.timedelta(minutes=30), sales_end):
        for webinar in (paid, free):
            assert (status_label(webinar, now=at) == "sales closed") == (closed_reason(webinar, at) is not None)
    # Without a sales end a paid webinar stops selling 30 minutes before it ends; by then it is live.
    assert status_label(_webinar(price_amount=2500), now=START - dt.timedelta(minutes=1)) == "on sale"
    assert status_label(_webinar(price_amount=2500, seats_taken=10, sales_end=sales_end), now=sales_end) == "sold out"
