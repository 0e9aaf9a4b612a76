"""Each post to /jitsi/events/… stands alone: a bad one is refused by itself (4xx, nothing
stored from it) and the posts that arrived with it are stored; a batch whose shared
transaction fails is written again post by post."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from tests.access.conftest import add_ticket
from tests.attendance import prosody as p
from tests.attendance.test_events import MIN, _webinar
from ticketing.db.models import AttendanceSession, JitsiEvent


def _headers(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


async def _count(sessionmaker, model) -> int:
    async with sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def test_thirty_good_posts_are_stored_beside_bad_ones(client, settings, sessionmaker):
    webinar, _, s = await _webinar(sessionmaker)
    ticket, _ = await add_ticket(sessionmaker, webinar)
    secret = settings.jitsi_events_secret
    good = [p.joined(webinar.room, p.occupant(f"o{i}@meet.example.com/r", s + i * MIN, **p.user(str(ticket.id))), i + 1)
            for i in range(30)]
    _, surrogate = p.joined(webinar.room, p.occupant("x@meet.example.com/r", s, name="Eve \ud800"), 1)
    _, nul_room = p.joined(webinar.room + "\x00", p.occupant("y@meet.example.com/r", s), 1)
    _, long_name = p.joined(webinar.room, p.occupant("z@meet.example.com/r", s, name="n" * 300), 1)
    _, wrong_type = p.joined(webinar.room, p.occupant("w@meet.example.com/r", s), 1)
    wrong_type["occupant"]["joined_at"] = "yesterday"
    _, huge = p.joined(webinar.room, p.occupant("h@meet.example.com/r", s), 1)
    huge["active_occupants_count"] = 2**70
    nested = b'{"event_name": "muc-occupant-joined", "room_name": "r", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    shallow_deep = json.dumps({"event_name": "muc-occupant-joined", "room_name": "r",
                               "x": json.loads("[" * 40 + "]" * 40)}).encode()
    bad = [(json.dumps(surrogate).encode(), 422), (json.dumps(nul_room).encode(), 422),
           (json.dumps(wrong_type).encode(), 422), (json.dumps(huge).encode(), 422),
           (nested, 400), (shallow_deep, 422), (b'{"event_name": "x", "room_name": \xff}', 400)]

    async def send(data: bytes):
        return await client.post("/jitsi/events/occupant/joined", data=data, headers=_headers(secret))

    for _ in range(2):  # two rounds, so a bad post lands in a batch with good ones at least once
        answers = await asyncio.gather(*(send(json.dumps(body).encode()) for _, body in good),
                                       *(send(data) for data, _ in bad))
        statuses = [a.status for a in answers]
        assert statuses[:30] == [200] * 30
        assert statuses[30:] == [status for _, status in bad]
        for answer in answers[30:]:
            assert (await answer.json())["error"]["message"]
    assert await _count(sessionmaker, JitsiEvent) == 30
    async with sessionmaker() as session:
        stays = list(await session.scalars(select(AttendanceSession)))
    assert len(stays) == 30 and {s.ticket_id for s in stays} == {ticket.id}
    # An over-long name is cut to its column, not refused: the post is stored.
    assert (await send(json.dumps(long_name).encode())).status == 200
    assert await _count(sessionmaker, JitsiEvent) == 31


async def test_a_batch_that_fails_is_written_post_by_post(settings, sessionmaker, monkeypatch):
    from ticketing.attendance import events
    from ticketing.attendance.intake import EventIntake

    webinar, _, s = await _webinar(sessionmaker)
    original = events.apply_many
    poison = "poison@meet.example.com/r"
    seen: list[int] = []

    async def failing_with_the_poison(session, batch):
        # A fault no check foresaw, in one post: it fails whatever transaction it is in.
        seen.append(len(batch))
        if any(e.occupant is not None and e.occupant.jid == poison for e in batch):
            raise RuntimeError("unforeseen")
        return await original(session, batch)

    monkeypatch.setattr(events, "apply_many", failing_with_the_poison)
    intake = EventIntake(sessionmaker)
    intake.start()
    posts = [p.joined(webinar.room, p.occupant(f"o{i}@meet.example.com/r", s + i * MIN), i + 1) for i in range(10)]
    posts.insert(5, p.joined(webinar.room, p.occupant(poison, s), 1))
    waiting = [asyncio.create_task(intake.submit(*post)) for post in posts]
    outcomes = await asyncio.gather(*waiting)
    await intake.stop()
    assert seen[0] == 11  # one batch first, then each post alone
    assert outcomes[5] == "error" and outcomes[:5] + outcomes[6:] == ["recorded"] * 10
    assert await _count(sessionmaker, AttendanceSession) == 10
    assert await _count(sessionmaker, JitsiEvent) == 11  # the poisoned post kept for the sweep
