"""The event receiver over real HTTP: the component's exact payloads, posted twice, in any
order, with leave events missing and rooms destroyed; figures checked to the minute."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import random
import uuid

import pytest
from sqlalchemy import func, select

from tests import factories
from tests.access.conftest import add_ticket, move_webinar
from tests.attendance import prosody as p
from ticketing.db import utcnow
from ticketing.db.models import AttendanceSession, JitsiEvent
from ticketing.orders.references import order_reference

MIN = dt.timedelta(minutes=1)


async def _webinar(sessionmaker, owner=None, **options):
    """A one-hour webinar that started two hours ago (whole minutes), and its organizer's API key."""
    if owner is None:
        owner, key = await factories.organizer(sessionmaker, email=f"o{uuid.uuid4().hex[:8]}@example.com")
    else:
        owner, key = owner
    webinar = await factories.webinar(sessionmaker, owner, **options)
    start = (utcnow() - dt.timedelta(hours=2)).replace(second=0, microsecond=0)
    await move_webinar(sessionmaker, webinar, start, start + 60 * MIN)
    return webinar, key, start


def _scenario(room: str, s: dt.datetime, a: str, b: str, c: str, host: str) -> list[tuple[str, dict]]:
    """Three attendees, a host and a breakout room; B's and C's leave events never arrive.

    A: main 0–20 (a1); main 25–40 then breakout 40–50 (a2, one connection); a second tab 30–35 (a3).
    B: main 10–45, leave event lost (the destroyed room lists it).
    C: main 5 onwards, still there when the room is ended at 70 (no left_at anywhere).
    Host (not a ticket): −5 to 65.
    """
    ua, ub, uc = p.user(a, "Ann"), p.user(b, "Ben"), p.user(c, "Cy")
    uh = p.user(host, "Olga Organizer", "olga@example.com") | {"moderator": True, "affiliation": "owner"}
    a1 = p.occupant("a1@meet.example.com/r1", s, s + 20 * MIN, **ua)
    a2 = p.occupant("a2@meet.example.com/r2", s + 25 * MIN, s + 40 * MIN, **ua)
    a2b = p.occupant("a2@meet.example.com/r2", s + 40 * MIN, s + 50 * MIN, **ua)
    a3 = p.occupant("a3@meet.example.com/r3", s + 30 * MIN, s + 35 * MIN, **ua)
    b1 = p.occupant("b1@meet.example.com/r4", s + 10 * MIN, s + 45 * MIN, **ub)
    c1 = p.occupant("c1@meet.example.com/r5", s + 5 * MIN, **uc)
    h1 = p.occupant("h1@meet.example.com/r6", s - 5 * MIN, s + 65 * MIN, **uh)
    bo = "9a1b2c3d-breakout"
    return [
        p.room_created(room, s - 5 * MIN),
        p.joined(room, h1, 1),
        p.joined(room, a1, 2),
        p.joined(room, c1, 3),
        p.joined(room, b1, 4),
        p.left(room, a1, 3),
        p.joined(room, a2, 4),
        p.joined(room, a3, 5),
        p.left(room, a3, 4),
        p.left(room, a2, 3),
        p.room_created(room, s + 40 * MIN, breakout=bo),
        p.joined(room, a2b, 1, breakout=bo),
        # a2's breakout leave is lost; the breakout room's end carries it.
        p.room_destroyed(room, s + 40 * MIN, s + 50 * MIN, [a2b], breakout=bo),
        p.left(room, h1, 2),
        p.room_destroyed(room, s - 5 * MIN, s + 70 * MIN, [h1, a1, c1, b1, a2, a3]),
    ]


@pytest.mark.parametrize("order", ["as_sent", "shuffled_twice", "all_at_once"])
async def test_figures_to_the_minute_whatever_the_order(client, settings, sessionmaker, order, monkeypatch):
    from ticketing.attendance import intake

    batches: list[int] = []
    receive_many = intake.receive_many

    async def counted(sessionmaker, posts):
        batches.append(len(posts))
        return await receive_many(sessionmaker, posts)

    monkeypatch.setattr(intake, "receive_many", counted)
    webinar, key, s = await _webinar(sessionmaker, certificate_min_percent=75)
    ann, _ = await add_ticket(sessionmaker, webinar, name="Ann", email="ann@example.com")
    ben, _ = await add_ticket(sessionmaker, webinar, name="Ben", email="ben@example.com")
    cy, _ = await add_ticket(sessionmaker, webinar, name="Cy", email="cy@example.com")
    dora, _ = await add_ticket(sessionmaker, webinar, name="Dora", email="dora@example.com")
    events = _scenario(webinar.room, s, str(ann.id), str(ben.id), str(cy.id), host=str(webinar.organizer_id))
    if order != "as_sent":
        events = events + events  # every post delivered twice, as the component's retries do
        random.Random(12).shuffle(events)
    secret = settings.jitsi_events_secret
    outcomes = []
    if order == "all_at_once":  # concurrent posts: written in batches, duplicates within one batch
        responses = await asyncio.gather(*(p.post(client, secret, event) for event in events))
    else:
        responses = [await p.post(client, secret, event) for event in events]
    for response in responses:
        assert response.status == 200, await response.text()
        outcomes.append((await response.json())["outcome"])
    assert set(outcomes) <= {"recorded", "duplicate"}
    assert outcomes.count("recorded") == 15
    assert sum(batches) == len(events)
    if order == "all_at_once":
        assert max(batches) > 1

    # A retry whose JSON keys come in another order is the same event.
    kind, body = events[0]
    response = await p.post(client, secret, (kind, dict(reversed(list(body.items())))))
    assert (await response.json())["outcome"] == "duplicate"

    response = await client.get(f"/api/webinars/{webinar.id}/tickets", headers={"Authorization": f"Bearer {key}"})
    rows = {row["name"]: row for row in (await response.json())["tickets"]}
    assert rows["Ann"]["minutes_present"] == 45 and rows["Ann"]["percent_of_scheduled"] == 75
    assert rows["Ann"]["session_count"] == 4
    assert rows["Ann"]["first_join_at"] == factories_iso(s)
    assert rows["Ann"]["last_leave_at"] == factories_iso(s + 50 * MIN)
    assert rows["Ann"]["shared_link"] == ["two_devices_at_once"]
    assert [x["breakout_room"] for x in rows["Ann"]["sessions"]] == [None, None, None, "9a1b2c3d-breakout"]
    assert rows["Ben"]["minutes_present"] == 35 and rows["Ben"]["percent_of_scheduled"] == 58
    assert rows["Ben"]["last_leave_at"] == factories_iso(s + 45 * MIN)
    assert rows["Ben"]["shared_link"] == []
    # Cy was still in when the room was ended at 70: 65 minutes, 55 of them in the scheduled hour.
    assert rows["Cy"]["minutes_present"] == 65 and rows["Cy"]["percent_of_scheduled"] == 91
    assert rows["Cy"]["last_leave_at"] == factories_iso(s + 70 * MIN) and rows["Cy"]["present_now"] is False
    assert rows["Dora"]["minutes_present"] == 0 and rows["Dora"]["session_count"] == 0
    assert rows["Dora"]["first_join_at"] is None and rows["Dora"]["sessions"] == []
    # The columns that were there before come first, unchanged.
    assert list(rows["Ann"])[:10] == ["id", "order_id", "email", "name", "status", "revoked_reason", "created_at",
                                      "first_joined_at", "last_joined_at", "join_count"]

    response = await client.get(f"/api/webinars/{webinar.id}/attendance", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    summary = await response.json()
    assert summary | {"webinar_id": None} == {
        "webinar_id": None, "scheduled_minutes": 60, "tickets": 4, "attendees": 3, "median_minutes": 45,
        "peak_concurrent": 3, "occupants_without_ticket": 1, "shared_link_tickets": 1, "present_now": 0,
    }

    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(JitsiEvent)) == 15
        host = await session.scalar(select(AttendanceSession).where(AttendanceSession.occupant_jid.startswith("h1@")))
    # The host is recorded, as an occupant without a ticket.
    assert host.ticket_id is None and host.user_id == str(webinar.organizer_id) and host.name == "Olga Organizer"


def factories_iso(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_csv_appends_the_attendance_columns(client, settings, sessionmaker):
    webinar, key, s = await _webinar(sessionmaker)
    ann, _ = await add_ticket(sessionmaker, webinar, name="Ann", email="ann@example.com")
    who = p.occupant("a1@meet.example.com/x", s + 5 * MIN, s + 35 * MIN, **p.user(str(ann.id), "Ann"))
    for event in (p.joined(webinar.room, who, 1), p.left(webinar.room, who, 0)):
        assert (await p.post(client, settings.jitsi_events_secret, event)).status == 200
    response = await client.get(f"/api/webinars/{webinar.id}/tickets",
                                headers={"Authorization": f"Bearer {key}", "Accept": "text/csv"})
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["id", "order_id", "email", "name", "status", "revoked_reason", "created_at", "first_joined_at",
                       "last_joined_at", "join_count", "delivery_status", "delivery_error", "order_dispute",
                       "invoice_number", "session_count", "first_join_at", "last_leave_at",
                       "minutes_present", "percent_of_scheduled", "present_now", "devices", "shared_link",
                       "ticket_type_id", "ticket_type", "reference"]
    assert rows[1][14:22] == ["1", factories_iso(s + 5 * MIN), factories_iso(s + 35 * MIN), "30", "50", "no", "0", ""]
    assert rows[1][23] == "Ticket" and rows[1][24] == order_reference(ann.order_id)


async def test_open_stay_counts_until_now_and_shows_present(client, settings, sessionmaker):
    webinar, key, _ = await _webinar(sessionmaker)
    now = utcnow().replace(microsecond=0)
    await move_webinar(sessionmaker, webinar, now - 20 * MIN, now + 40 * MIN)
    ann, _ = await add_ticket(sessionmaker, webinar, name="Ann")
    who = p.occupant("a1@meet.example.com/x", now - 10 * MIN, **p.user(str(ann.id), "Ann"))
    assert (await p.post(client, settings.jitsi_events_secret, p.joined(webinar.room, who, 1))).status == 200
    response = await client.get(f"/api/webinars/{webinar.id}/tickets", headers={"Authorization": f"Bearer {key}"})
    row = (await response.json())["tickets"][0]
    assert row["present_now"] is True and row["last_leave_at"] is None and row["minutes_present"] == 10
    response = await client.get(f"/api/webinars/{webinar.id}/attendance", headers={"Authorization": f"Bearer {key}"})
    assert (await response.json())["present_now"] == 1


async def test_unknown_rooms_and_tokens_without_a_ticket(client, settings, sessionmaker):
    webinar, _, s = await _webinar(sessionmaker)
    other, _, _ = await _webinar(sessionmaker)
    other_ticket, _ = await add_ticket(sessionmaker, other)
    secret = settings.jitsi_events_secret
    guest = p.occupant("guest@meet.example.com/g", s)
    response = await p.post(client, secret, p.joined("somebody-elses-room", guest, 1))
    assert response.status == 200 and (await response.json())["outcome"] == "ignored"
    response = await p.post(client, secret, p.joined("[acme]" + webinar.room, guest, 1))  # a tenant's room name
    assert (await response.json())["outcome"] == "recorded"
    # A ticket of another webinar, and a hand-made token's id, are occupants without a ticket here.
    for jid, context in (("x@m/1", p.user(str(other_ticket.id))), ("y@m/2", p.user("manual-1234"))):
        occupant = p.occupant(jid, s + MIN, **context)
        assert (await (await p.post(client, secret, p.joined(webinar.room, occupant, 2))).json())["outcome"] == "recorded"
    async with sessionmaker() as session:
        rows = list(await session.scalars(select(AttendanceSession).where(AttendanceSession.webinar_id == webinar.id)))
        stored = list(await session.scalars(select(JitsiEvent).order_by(JitsiEvent.id)))
    assert len(rows) == 3 and all(row.ticket_id is None for row in rows)
    assert [e.outcome for e in stored] == ["ignored", "recorded", "recorded", "recorded"]
    assert stored[0].payload["room_name"] == "somebody-elses-room" and stored[0].webinar_id is None


async def test_the_secret_is_required_and_compared(client, settings, sessionmaker):
    webinar, _, s = await _webinar(sessionmaker)
    event = p.joined(webinar.room, p.occupant("a@m/1", s), 1)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {settings.jitsi_events_secret}"}):
        response = await client.post("/jitsi/events/occupant/joined", json=event[1], headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    # The dev secret is kept in the var dir, so a restart keeps it.
    assert (settings.var_dir / "jitsi_events_secret").read_text().strip() == settings.jitsi_events_secret
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(JitsiEvent)) == 0


async def test_routes_answer_404_without_a_secret_outside_dev_mode(make_settings, start_client):
    from tests.conftest import JITSI_APP_SECRET, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET

    settings = make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                             jitsi_app_secret=JITSI_APP_SECRET)
    assert settings.jitsi_events_secret is None
    client = await start_client(settings)
    response = await client.post("/jitsi/events/room/created", json={"event_name": "muc-room-created"},
                                 headers={"Authorization": "Bearer anything"})
    assert response.status == 404
    configured = make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                               jitsi_app_secret=JITSI_APP_SECRET, jitsi_events_secret="e" * 32)
    client = await start_client(configured)
    response = await p.post(client, "e" * 32, p.room_created("no-such-room", utcnow()))
    assert response.status == 200 and (await response.json())["outcome"] == "ignored"


@pytest.mark.parametrize(("kind", "body", "status"), [
    ("occupant/joined", b"not json", 400),
    ("occupant/joined", b"[1, 2]", 422),
    ("occupant/joined", b'{"event_name": "muc-occupant-left", "room_name": "r1"}', 422),
    ("occupant/joined", b'{"event_name": "muc-occupant-joined", "room_name": "r1", "occupant": {"occupant_jid": "a@b/c"}}', 422),
    ("occupant/left",
     b'{"event_name": "muc-occupant-left", "room_name": "r1", "occupant": {"occupant_jid": "a@b/c", "joined_at": 1700000000}}',
     422),
    ("room/destroyed", b'{"event_name": "muc-room-destroyed", "room_name": "r1", "destroyed_at": 1700000000, "all_occupants": "x"}', 422),
    ("room/created", b'{"event_name": "muc-room-created", "room_name": "r1", "created_at": true}', 422),
])
async def test_malformed_posts_are_refused_and_nothing_is_stored(client, settings, sessionmaker, kind, body, status):
    response = await client.post(f"/jitsi/events/{kind}", data=body, headers={
        "Authorization": f"Bearer {settings.jitsi_events_secret}", "Content-Type": "application/json"})
    assert response.status == status
    assert (await response.json())["error"]["message"]
    response = await client.post(f"/jitsi/events/{kind}", data=b"{}", headers={
        "Authorization": f"Bearer {settings.jitsi_events_secret}", "Content-Type": "text/plain"})
    assert response.status == 415
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(JitsiEvent)) == 0


async def test_a_failed_application_keeps_the_event_for_the_sweep(client, settings, sessionmaker, monkeypatch):
    from ticketing.attendance import events
    from ticketing.jobs.registry import JobContext

    webinar, _, s = await _webinar(sessionmaker)
    ann, _ = await add_ticket(sessionmaker, webinar)
    original = events.apply_many

    async def broken(session, posted):
        raise RuntimeError("a bug")

    monkeypatch.setattr(events, "apply_many", broken)
    who = p.occupant("a@m/1", s, s + 30 * MIN, **p.user(str(ann.id)))
    response = await p.post(client, settings.jitsi_events_secret, p.left(webinar.room, who, 0))
    assert response.status == 200 and (await response.json())["outcome"] == "error"
    monkeypatch.setattr(events, "apply_many", original)
    context = JobContext(settings=settings, sessionmaker=sessionmaker, stripe=None, http=None)
    assert await events.retry_events(context, now=utcnow() + 2 * MIN) == 1
    async with sessionmaker() as session:
        stay = await session.scalar(select(AttendanceSession))
        stored = await session.scalar(select(JitsiEvent))
    assert stay.ticket_id == ann.id and stay.left_at == s + 30 * MIN
    assert stored.outcome == "recorded" and stored.error is None and stored.processed_at is not None


async def test_webinar_options_in_the_api(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker)
    headers = {"Authorization": f"Bearer {key}"}
    response = await client.post("/api/webinars", json=factories.webinar_input(), headers=headers)
    created = await response.json()
    assert created["one_device"] is False and created["certificate_min_percent"] is None
    response = await client.patch(f"/api/webinars/{created['id']}", json={"one_device": True,
                                                                          "certificate_min_percent": 75}, headers=headers)
    body = await response.json()
    assert body["one_device"] is True and body["certificate_min_percent"] == 75
    for bad in ({"one_device": "yes"}, {"certificate_min_percent": 0}, {"certificate_min_percent": 101},
                {"certificate_min_percent": 50.5}):
        response = await client.patch(f"/api/webinars/{created['id']}", json=bad, headers=headers)
        assert response.status == 422
        assert (await response.json())["error"]["field"] == next(iter(bad))
    response = await client.get(f"/api/webinars/{created['id']}", headers=headers)
    assert (await response.json())["certificate_min_percent"] == 75


async def test_jitsi_config_prints_the_event_sync_component(settings, capsys, monkeypatch):
    from ticketing.cli import main

    monkeypatch.setenv("TICKETING_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("TICKETING_BASE_URL", "https://tickets.example.com")
    monkeypatch.setenv("TICKETING_JITSI_URL", "https://meet.example.com")
    assert main(["jitsi-config"]) == 0
    out = capsys.readouterr().out
    assert main(["jitsi-config", "--target", "docker"]) == 0
    docker = capsys.readouterr().out
    assert 'Component "esync.meet.example.com" "event_sync_component"' in out
    assert 'muc_component = "conference.meet.example.com"' in out
    assert 'api_prefix = "https://tickets.example.com/jitsi"' in out
    assert f'api_headers = {{ ["Authorization"] = "Bearer {settings.jitsi_events_secret}"; }}' in out
    assert "include_user_info = true" in out
    assert "prosody-plugins-custom" in docker and 'muc_component = "muc.meet.jitsi"' in docker
    assert 'Component "esync.meet.jitsi" "event_sync_component"' in docker


async def test_a_room_of_thousands_fits_in_one_post(client, settings, sessionmaker, monkeypatch):
    from ticketing.attendance import events

    monkeypatch.setattr(events, "CHUNK", 700)  # several statements for one post
    webinar, key, s = await _webinar(sessionmaker)
    ann, _ = await add_ticket(sessionmaker, webinar, name="Ann")
    guests = [p.occupant(f"guest-{i:05d}-{'x' * 300}@meet.example.com/r{i}", s + (i % 50) * MIN, s + 55 * MIN,
                         name=f"Guest {i}") for i in range(3000)]
    guests.append(p.occupant("a@meet.example.com/1", s, s + 30 * MIN, **p.user(str(ann.id), "Ann")))
    event = p.room_destroyed(webinar.room, s, s + 56 * MIN, guests)
    body = json.dumps(event[1]).encode()
    assert len(body) > 1024 * 1024  # more than the app's limit for other routes
    response = await client.post("/jitsi/events/room/destroyed", data=io.BytesIO(body), headers={
        "Authorization": f"Bearer {settings.jitsi_events_secret}", "Content-Type": "application/json"})
    assert response.status == 200, await response.text()
    response = await client.get(f"/api/webinars/{webinar.id}/attendance", headers={"Authorization": f"Bearer {key}"})
    summary = await response.json()
    assert summary["attendees"] == 1 and summary["occupants_without_ticket"] == 3000
    metrics = await (await client.get("/metrics")).text()
    assert 'type="jitsi.room/destroyed"' in metrics


async def test_the_intake_writes_what_is_pending_when_it_stops(settings, sessionmaker):
    from ticketing.attendance.intake import EventIntake

    webinar, _, s = await _webinar(sessionmaker)
    intake = EventIntake(sessionmaker, max_batch=3)
    intake.start()
    posts = [p.joined(webinar.room, p.occupant(f"o{i}@m/r", s + i * MIN), i + 1) for i in range(10)]
    waiting = [asyncio.create_task(intake.submit(*post)) for post in posts]
    await asyncio.sleep(0)  # every submit is queued before the stop
    await intake.stop()
    assert [await task for task in waiting] == ["recorded"] * 10
    # Stopped, it writes each post itself.
    assert await intake.submit(*posts[0]) == "duplicate"
    async with sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(AttendanceSession)) == 10
