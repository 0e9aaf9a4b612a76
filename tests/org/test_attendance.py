"""Attendance in the console: the Prosody module's events posted for two tickets show up on the
webinar page to the minute, and the webinar form sets the two attendance options."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests import factories
from tests.access.conftest import add_ticket, move_webinar
from tests.attendance import prosody as p
from tests.org.conftest import csrf_of
from ticketing.db import utcnow
from ticketing.db.models import Webinar

MIN = dt.timedelta(minutes=1)


def _events(room: str, s: dt.datetime, ann: str, ben: str) -> list[tuple[str, dict]]:
    """Ann: 0–45 on one device and 10–20 on a second at once; Ben: 10–40. Nobody is left in the room."""
    ua, ub = p.user(ann, "Ann", "ann@example.com"), p.user(ben, "Ben", "ben@example.com")
    a1 = p.occupant("a1@meet.example.com/r1", s, s + 45 * MIN, **ua)
    a2 = p.occupant("a2@meet.example.com/r2", s + 10 * MIN, s + 20 * MIN, **ua)
    b1 = p.occupant("b1@meet.example.com/r3", s + 10 * MIN, s + 40 * MIN, **ub)
    return [p.room_created(room, s), p.joined(room, a1, 1), p.joined(room, b1, 2), p.joined(room, a2, 3),
            p.left(room, a2, 2), p.left(room, b1, 1), p.left(room, a1, 0),
            p.room_destroyed(room, s, s + 46 * MIN, [a1, a2, b1])]


async def attended_webinar(sessionmaker, post, organizer) -> Webinar:
    """A one-hour webinar that ended an hour ago, three tickets, and the events of two of them
    sent through `post(event)`."""
    webinar = await factories.webinar(sessionmaker, organizer, title="Widgets Live")
    start = (utcnow() - dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    await move_webinar(sessionmaker, webinar, start, start + 60 * MIN)
    ann, _ = await add_ticket(sessionmaker, webinar, name="Ann", email="ann@example.com")
    ben, _ = await add_ticket(sessionmaker, webinar, name="Ben", email="ben@example.com")
    await add_ticket(sessionmaker, webinar, name="Cy", email="cy@example.com")
    for event in _events(webinar.room, start, str(ann.id), str(ben.id)):
        await post(event)
    return webinar


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_the_webinar_page_shows_attendance_to_the_minute(client, settings, sessionmaker, signed_in):
    organizer, key = await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    quiet = await factories.webinar(sessionmaker, organizer, title="Nobody yet")
    page = await (await client.get(f"/org/webinars/{quiet.id}")).text()
    assert 'id="attendance"' not in page and "Present</th>" not in page

    async def post(event):
        response = await p.post(client, settings.jitsi_events_secret, event)
        assert response.status == 200, await response.text()

    webinar = await attended_webinar(sessionmaker, post, organizer)
    response = await client.get(f"/org/webinars/{webinar.id}")
    assert response.status == 200
    html = await response.text()
    summary = _text(html[html.index('id="attendance"'):html.index("</dl>", html.index('id="attendance"'))])
    assert "Came 2 of 3" in summary
    assert "Median time 37.5 min" in summary
    assert "Most at once 2" in summary
    assert "Present now 0" in summary
    assert "Shared links 1" in summary
    rows = {}
    table = html[html.index('id="attendees"'):]
    for row in re.findall(r"<tr>(.*?)</tr>", table[:table.index("</section>")], re.S):
        cells = re.findall(r'<td data-label="([^"]+)"[^>]*>(.*?)</td>', row, re.S)
        if cells:
            named = {label: _text(value).strip() for label, value in cells}
            rows[named["Name"]] = named
    assert rows["Ann"]["Present"] == "45 min · 75 % Shared link: two devices at once"
    assert rows["Ben"]["Present"] == "30 min · 50 %"
    assert rows["Cy"]["Present"] == "—"

    # The export is the API's CSV, attendance columns included.
    exported = await (await client.get(f"/org/webinars/{webinar.id}/attendees.csv")).text()
    api = await client.get(f"/api/webinars/{webinar.id}/tickets",
                           headers={"Authorization": f"Bearer {key}", "Accept": "text/csv"})
    assert exported == await api.text() and "minutes_present" in exported and ",45,75," in exported


async def _csrf(client, path: str) -> str:
    return csrf_of(await (await client.get(path)).text())


def _form(**overrides: str) -> dict[str, str]:
    data = {"title": "Widgets", "description": "", "starts_at": "2030-01-31T18:00", "ends_at": "2030-01-31T19:30",
            "time_zone": "Europe/Berlin", "price": "25.00", "currency": "EUR", "capacity": "", "room": ""}
    data.update(overrides)
    return data


async def _stored(sessionmaker, title: str) -> Webinar | None:
    from sqlalchemy import select
    async with sessionmaker() as session:
        return await session.scalar(select(Webinar).where(Webinar.title == title))


@pytest.mark.parametrize("percent,error", [
    ("abc", "Enter a whole percent from 1 to 100, or leave it empty for no certificates."),
    ("150", "The certificate&#39;s share must be a whole number from 1 to 100, or empty for no certificates."),
    ("0", "The certificate&#39;s share must be a whole number from 1 to 100, or empty for no certificates."),
])
async def test_a_bad_certificate_percent_is_shown_next_to_the_field(client, sessionmaker, signed_in, percent, error):
    await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    csrf = await _csrf(client, "/org/webinars/new")
    response = await client.post("/org/webinars", data={**_form(title="Bad percent", certificate_min_percent=percent),
                                                        "one_device": "on", "csrf_token": csrf})
    assert response.status == 422
    html = await response.text()
    assert f'<p class="field-error" id="certificate_min_percent-error">{error}</p>' in html
    assert f'value="{percent}"' in html and re.search(r'id="one_device"[^>]* checked', html)
    assert await _stored(sessionmaker, "Bad percent") is None


async def test_the_form_sets_and_clears_the_attendance_options(client, sessionmaker, signed_in):
    await factories.organizer(sessionmaker, name="Ada", email="ada@example.com")
    await signed_in(client, "ada@example.com")
    blank = await (await client.get("/org/webinars/new")).text()
    assert '<label for="one_device">One device per ticket</label>' in blank
    assert re.search(r'<label for="certificate_min_percent">Certificate of attendance from', blank)
    assert "% of the scheduled time" in blank
    csrf = csrf_of(blank)
    response = await client.post("/org/webinars", data={**_form(title="Kept", certificate_min_percent=" 80 "),
                                                        "one_device": "on", "csrf_token": csrf}, allow_redirects=False)
    assert response.status == 303, await response.text()
    webinar = await _stored(sessionmaker, "Kept")
    assert (webinar.one_device, webinar.certificate_min_percent) == (True, 80)

    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    assert re.search(r'id="one_device"[^>]* checked', edit) and 'value="80"' in edit
    # Unticked and emptied: the checkbox is not sent at all.
    response = await client.post(f"/org/webinars/{webinar.id}/edit",
                                 data={**_form(title="Kept"), "certificate_min_percent": "", "csrf_token": csrf_of(edit)},
                                 allow_redirects=False)
    assert response.status == 303, await response.text()
    webinar = await _stored(sessionmaker, "Kept")
    assert (webinar.one_device, webinar.certificate_min_percent) == (False, None)
    edit = await (await client.get(f"/org/webinars/{webinar.id}/edit")).text()
    assert not re.search(r'id="one_device"[^>]* checked', edit)
