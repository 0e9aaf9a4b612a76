"""/j/{code}, /asap/… and the host link over real HTTP, on both databases."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from cryptography.hazmat.primitives import serialization

from tests import factories
from tests.access.conftest import SECRET, add_ticket, move_webinar
from ticketing.access.tokens import Tokens
from ticketing.db import utcnow
from ticketing.db.models import TicketStatus, WebinarStatus
from ticketing.web.ratelimit import RateLimiter

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]+\.")


def no_token(body: str) -> bool:
    return "jwt" not in body.lower() and not JWT_LIKE.search(body)


async def test_open_link_redirects_into_the_room(make_settings, start_client, sessionmaker):
    settings = make_settings(jitsi_app_secret=SECRET, jitsi_url="https://meet.example.com/acme", jitsi_subject="acme")
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    now = utcnow()
    await move_webinar(sessionmaker, webinar, now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1))
    _, code = await add_ticket(sessionmaker, webinar)
    response = await client.get(f"/j/{code}", allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith(f"https://meet.example.com/acme/{webinar.room}?jwt=")
    assert response.headers["Cache-Control"] == "no-store"
    claims = Tokens.from_settings(settings).verify(location.partition("?jwt=")[2])
    assert claims["sub"] == "acme" and claims["room"] == webinar.room
    assert claims["context"]["user"]["moderator"] is False


async def test_unknown_code_is_404(client):
    response = await client.get("/j/" + "A" * 43)
    assert response.status == 404
    assert "not known" in await response.text()


async def test_waiting_page_has_start_time_and_countdown_but_no_token(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker, title="Widgets & Gadgets")
    _, code = await add_ticket(sessionmaker, webinar)
    response = await client.get(f"/j/{code}")
    assert response.status == 200
    body = await response.text()
    assert '<html lang="en">' in body and "<title>Opens soon: Widgets &amp; Gadgets" in body
    assert f'datetime="{webinar.starts_at.isoformat().replace("+00:00", "Z")}"' in body
    remaining = int(re.search(r'data-remaining-ms="(\d+)"', body).group(1))
    expected = (webinar.starts_at - dt.timedelta(minutes=15) - utcnow()).total_seconds() * 1000
    assert abs(remaining - expected) < 60_000
    assert 'role="timer"' in body and 'aria-labelledby="countdown-label"' in body
    assert no_token(body)
    assert "http" not in body.split("<script nonce=", 1)[1]  # the countdown needs nothing from the network


async def test_revoked_ticket_page_says_why(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar, status=TicketStatus.REVOKED, revoked_reason="refunded")
    response = await client.get(f"/j/{code}")
    assert response.status == 410
    body = await response.text()
    assert "This ticket was refunded" in body and 'data-reason="refunded"' in body and no_token(body)


async def test_cancelled_and_ended_pages(client, sessionmaker):
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    await move_webinar(sessionmaker, webinar, webinar.starts_at, webinar.ends_at, status=WebinarStatus.CANCELLED)
    response = await client.get(f"/j/{code}")
    assert response.status == 410 and "has been cancelled" in await response.text()

    over = await factories.webinar(sessionmaker)
    _, over_code = await add_ticket(sessionmaker, over)
    now = utcnow()
    await move_webinar(sessionmaker, over, now - dt.timedelta(hours=2), now - dt.timedelta(minutes=31))
    response = await client.get(f"/j/{over_code}")
    body = await response.text()
    assert response.status == 410 and "This webinar has ended" in body and no_token(body)


async def test_rate_limited_per_code_with_retry_after(make_settings, start_client, sessionmaker):
    client = await start_client(make_settings(join_rate_per_code="3"))
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    _, other = await add_ticket(sessionmaker, webinar, email="other@example.com")
    statuses = [(await client.get(f"/j/{code}")).status for _ in range(3)]
    assert statuses == [200, 200, 200]
    limited = await client.get(f"/j/{code}")
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert (await client.get(f"/j/{other}")).status == 200  # another link is not affected


async def test_rate_limited_per_address(make_settings, start_client):
    client = await start_client(make_settings(join_rate_per_address="2", join_rate_per_code="0"))
    statuses = [(await client.get(f"/j/{'B' * 40}{i:03d}")).status for i in range(3)]
    assert statuses == [404, 404, 429]


async def test_rate_limiter_refills_evenly(sessionmaker):
    limiter = RateLimiter("test", 6)  # one every 10 s, bursts of 6
    assert [await limiter.hit(sessionmaker, "k", now=100.0) for _ in range(6)] == [0] * 6
    assert await limiter.hit(sessionmaker, "k", now=100.0) == 10
    assert await limiter.wait(sessionmaker, "k", now=100.0) == 10
    assert await limiter.hit(sessionmaker, "k", now=109.0) == 1
    assert await limiter.hit(sessionmaker, "k", now=110.0) == 0
    assert await limiter.hit(sessionmaker, "other", now=110.0) == 0
    assert await RateLimiter("off", 0).hit(sessionmaker, "k", now=0.0) == 0


async def test_rate_counters_are_purged_once_whole_again(sessionmaker):
    from ticketing.db import limits

    limiter = RateLimiter("test", 60)
    for i in range(100):
        await limiter.hit(sessionmaker, f"k{i}", now=float(i))
    assert await limits.purge(sessionmaker, now=50.0) == 50
    assert await limits.purge(sessionmaker, now=1000.0) == 50


async def test_key_server_is_404_in_hs256_mode(client):
    digest = hashlib.sha256(b"anything").hexdigest()
    assert (await client.get(f"/asap/{digest}.pem")).status == 404


async def test_key_server_serves_current_and_next_key(make_settings, start_client, rs256, key_dir):
    client = await start_client(make_settings(**rs256))
    for kid, public in ((rs256["jitsi_key_id"], "current.pub"), (rs256["jitsi_next_key_id"], "next.pub")):
        response = await client.get(f"/asap/{hashlib.sha256(kid.encode()).hexdigest()}.pem")
        assert response.status == 200
        served = serialization.load_pem_public_key(await response.read())
        expected = serialization.load_pem_public_key((key_dir / public).read_bytes())
        assert served.public_numbers() == expected.public_numbers()
    assert (await client.get(f"/asap/{hashlib.sha256(b'other').hexdigest()}.pem")).status == 404
    assert (await client.get("/asap/not-a-digest.pem")).status == 404
    assert (await client.get(f"/asap/{rs256['jitsi_key_id']}.pem")).status == 404


async def test_host_link(client, sessionmaker, settings):
    owner, key = await factories.organizer(sessionmaker)
    webinar = await factories.webinar(sessionmaker, owner)
    response = await client.get(f"/api/webinars/{webinar.id}/host-link", headers={"Authorization": f"Bearer {key}"})
    assert response.status == 200
    data = await response.json()
    assert data["url"].startswith(f"https://meet.jit.si/{webinar.room}?jwt=")
    opens = webinar.starts_at - dt.timedelta(minutes=15)
    claims = Tokens.from_settings(settings).verify(data["url"].partition("?jwt=")[2], now=opens.timestamp())
    assert claims["context"]["user"]["moderator"] is True
    assert claims["context"]["user"]["affiliation"] == "owner"
    assert claims["context"]["user"]["id"] == str(owner.id)


async def test_host_link_refusals(client, sessionmaker):
    owner, key = await factories.organizer(sessionmaker)
    _, stranger_key = await factories.organizer(sessionmaker, email="eve@example.com")
    webinar = await factories.webinar(sessionmaker, owner)
    url = f"/api/webinars/{webinar.id}/host-link"
    assert (await client.get(url)).status == 401
    forbidden = await client.get(url, headers={"Authorization": f"Bearer {stranger_key}"})
    assert forbidden.status == 403 and (await forbidden.json())["error"]["code"] == "forbidden"
    unknown = await client.get("/api/webinars/00000000-0000-0000-0000-000000000000/host-link",
                               headers={"Authorization": f"Bearer {key}"})
    assert unknown.status == 404
    await move_webinar(sessionmaker, webinar, webinar.starts_at, webinar.ends_at, status=WebinarStatus.CANCELLED)
    cancelled = await client.get(url, headers={"Authorization": f"Bearer {key}"})
    assert cancelled.status == 409 and "cancelled" in (await cancelled.json())["error"]["message"]
