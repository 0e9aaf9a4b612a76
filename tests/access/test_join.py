"""The join decision at chosen moments: window edges, revoked and ended tickets, join counting."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests import factories
from tests.access.conftest import SECRET, add_ticket, move_webinar
from ticketing.access import join
from ticketing.access.join_records import flush_joins
from ticketing.access.tokens import TokenExpired, Tokens, window
from ticketing.db.models import Ticket, TicketStatus, WebinarStatus
from ticketing.errors import NotFound
from ticketing.tickets.service import hash_code

SECOND = dt.timedelta(seconds=1)


@pytest.fixture
def tokens(make_settings) -> Tokens:
    return Tokens.from_settings(make_settings(jitsi_app_secret=SECRET, jitsi_url="https://meet.example.com"))


async def test_window_edges_one_second_either_side(sessionmaker, tokens):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    opens, closes = window(webinar, tokens.settings)
    assert opens == webinar.starts_at - dt.timedelta(minutes=15)
    assert closes == webinar.ends_at + dt.timedelta(minutes=30)

    early = await join.open_link(sessionmaker, tokens, code, now=opens - SECOND)
    assert isinstance(early, join.Waiting) and early.seconds_left == 1

    for moment in (opens + SECOND, closes - SECOND):
        admitted = await join.open_link(sessionmaker, tokens, code, now=moment)
        assert isinstance(admitted, join.Admitted)
        assert admitted.url.startswith(f"https://meet.example.com/{webinar.room}?jwt=")
        token = admitted.url.partition("?jwt=")[2]
        # What Prosody would check at that moment: accepted, and for exactly the webinar's room.
        claims = tokens.verify(token, now=moment.timestamp())
        assert claims["room"] == webinar.room and claims["iat"] == int(moment.timestamp())

    late = await join.open_link(sessionmaker, tokens, code, now=closes + SECOND)
    assert isinstance(late, join.Gone) and late.reason == "ended" and late.message == "This webinar has ended."


async def test_token_minted_just_before_the_end_stops_at_the_end(sessionmaker, tokens):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    _, closes = window(webinar, tokens.settings)
    admitted = await join.open_link(sessionmaker, tokens, code, now=closes - SECOND)
    with pytest.raises(TokenExpired):
        tokens.verify(admitted.url.partition("?jwt=")[2], now=closes.timestamp())


async def test_joins_are_recorded(sessionmaker, tokens):
    webinar = await factories.webinar(sessionmaker)
    ticket, code = await add_ticket(sessionmaker, webinar)
    first = webinar.starts_at - dt.timedelta(minutes=1)
    second = webinar.starts_at + dt.timedelta(minutes=20)
    await join.open_link(sessionmaker, tokens, code, now=first - dt.timedelta(hours=1))  # waiting: not a join
    await join.open_link(sessionmaker, tokens, code, now=first)
    await join.open_link(sessionmaker, tokens, code, now=second)
    await flush_joins(sessionmaker)  # SQLite writes joins in batches
    async with sessionmaker() as session:
        stored = await session.get(Ticket, ticket.id)
    assert (stored.join_count, stored.first_joined_at, stored.last_joined_at) == (2, first, second)


@pytest.mark.parametrize("reason", ["refunded", "disputed", "cancelled", "organizer"])
async def test_revoked_tickets_are_gone_with_their_reason(sessionmaker, tokens, reason):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar, status=TicketStatus.REVOKED, revoked_reason=reason)
    decision = await join.open_link(sessionmaker, tokens, code, now=webinar.starts_at)
    assert isinstance(decision, join.Gone)
    assert decision.reason == reason and decision.message == join.REASONS[reason]


async def test_cancelled_webinar_and_expired_ticket(sessionmaker, tokens):
    cancelled = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, cancelled)
    await move_webinar(sessionmaker, cancelled, cancelled.starts_at, cancelled.ends_at, status=WebinarStatus.CANCELLED)
    decision = await join.open_link(sessionmaker, tokens, code, now=cancelled.starts_at)
    assert isinstance(decision, join.Gone) and decision.reason == "cancelled"

    webinar = await factories.webinar(sessionmaker)
    _, expired_code = await add_ticket(sessionmaker, webinar, status=TicketStatus.EXPIRED)
    decision = await join.open_link(sessionmaker, tokens, expired_code, now=webinar.starts_at)
    assert isinstance(decision, join.Gone) and decision.reason == "ended"


async def test_unknown_and_malformed_codes_are_not_found(sessionmaker, tokens):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    for wrong in (code[:-1] + ("A" if code[-1] != "A" else "B"), "short", "x" * 500, code + "/../", ""):
        with pytest.raises(NotFound):
            await join.open_link(sessionmaker, tokens, wrong, now=webinar.starts_at)


async def test_the_stored_hash_is_compared_in_constant_time(sessionmaker, tokens, monkeypatch):
    webinar = await factories.webinar(sessionmaker)
    ticket, code = await add_ticket(sessionmaker, webinar)
    calls = []
    real = join.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(join, "compare_digest", recording)
    decision = await join.open_link(sessionmaker, tokens, code, now=webinar.starts_at)
    assert isinstance(decision, join.Admitted)
    async with sessionmaker() as session:
        stored_hash = await session.scalar(select(Ticket.code_hash).where(Ticket.id == ticket.id))
    assert calls == [(stored_hash, hash_code(code))]
    assert stored_hash != code and code not in stored_hash  # only the hash is kept


async def test_host_link_respects_the_window(sessionmaker, tokens):
    owner, _ = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    opens, closes = window(webinar, tokens.settings)
    async with sessionmaker() as session:
        link = await join.host_link(session, tokens, owner, webinar.id, now=opens - dt.timedelta(days=1))
    claims = tokens.verify(link.url.partition("?jwt=")[2], now=opens.timestamp())
    assert claims["context"]["user"]["moderator"] is True and claims["context"]["user"]["affiliation"] == "owner"
    assert (link.opens_at, link.expires_at) == (opens, closes)
    assert claims["exp"] == int(closes.timestamp())


async def test_a_join_writes_no_log_line_at_info(sessionmaker, tokens, caplog):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    with caplog.at_level("INFO"):
        assert isinstance(await join.open_link(sessionmaker, tokens, code, now=webinar.starts_at), join.Admitted)
    assert [r for r in caplog.records if r.name.startswith("ticketing") and r.levelno >= 20] == []
