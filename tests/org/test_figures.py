"""Where a webinar stands, as the console's list says it."""

from __future__ import annotations

import datetime as dt

from ticketing.db.models import Webinar, WebinarStatus
from ticketing.webinars.figures import status_label

START = dt.datetime(2030, 1, 31, 18, 0, tzinfo=dt.UTC)


def _webinar(**values) -> Webinar:
    fields = {"starts_at": START, "ends_at": START + dt.timedelta(hours=1), "capacity": 10, "seats_taken": 0,
              "status": WebinarStatus.SCHEDULED}
    fields.update(values)
    return Webinar(**fields)


def test_status_labels():
    before = START - dt.timedelta(days=1)
    assert status_label(_webinar(), now=before) == "on sale"
    assert status_label(_webinar(capacity=None, seats_taken=500), now=before) == "on sale"
    assert status_label(_webinar(seats_taken=10), now=before) == "sales closed"
    assert status_label(_webinar(), now=START + dt.timedelta(minutes=5)) == "live"
    assert status_label(_webinar(), now=START + dt.timedelta(hours=2)) == "ended"
    assert status_label(_webinar(status=WebinarStatus.ENDED), now=before) == "ended"
    assert status_label(_webinar(status=WebinarStatus.CANCELLED), now=START) == "cancelled"
