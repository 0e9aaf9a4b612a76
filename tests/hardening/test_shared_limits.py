"""Rate limits hold across processes: two app instances on one database give a client one
allowance between them, whichever instance each request reaches."""

from __future__ import annotations

import itertools

from tests import factories
from tests.access.conftest import SECRET, add_ticket
from tests.org.conftest import csrf_of


async def _two(make_settings, start_client, **values):
    settings = make_settings(jitsi_app_secret=SECRET, **values)
    return await start_client(settings), await start_client(settings)


async def test_join_limits_are_shared(make_settings, start_client, sessionmaker):
    a, b = await _two(make_settings, start_client, join_rate_per_address="4", join_rate_per_code="3")
    statuses = [(await client.get(f"/j/{'B' * 40}{i:03d}")).status for i, client in zip(range(5), itertools.cycle((a, b)))]
    assert statuses == [404, 404, 404, 404, 429]
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    # The per-address limit counts failed look-ups only, but refuses everything once over it:
    # the per-code limit is seen from another client address through the same database.
    c, d = await _two(make_settings, start_client, join_rate_per_address="0", join_rate_per_code="3")
    statuses = [(await client.get(f"/j/{code}")).status for client in (c, d, c, d)]
    assert statuses == [200, 200, 200, 429]
    refused = await d.get(f"/j/{code}")
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1


async def test_registration_limit_is_shared(make_settings, start_client, sessionmaker):
    a, b = await _two(make_settings, start_client, register_rate_per_address="2")
    free = await factories.webinar(sessionmaker, price_amount=0)
    statuses = [(await client.post(f"/w/{free.id}/checkout", data={"email": f"r{i}@example.com"},
                                   allow_redirects=False)).status for i, client in enumerate((a, b, a))]
    assert statuses == [303, 303, 429]


async def test_api_key_limit_is_shared(make_settings, start_client):
    a, b = await _two(make_settings, start_client, api_key_rate_per_address="2")
    bad = {"Authorization": "Bearer tk_not_a_key"}
    statuses = [(await client.get("/api/webinars", headers=bad)).status for client in (a, b, a)]
    assert statuses == [401, 401, 429]


async def test_sign_in_mail_limit_is_shared(make_settings, start_client, sessionmaker):
    a, b = await _two(make_settings, start_client)
    await factories.organizer(sessionmaker, email="ada@example.com")
    statuses = []
    for client in (a, b, a, b):  # three links a minute per address asked for
        form = await client.get("/org/login")
        response = await client.post("/org/login", data={"email": "ada@example.com",
                                                         "csrf_token": csrf_of(await form.text())})
        statuses.append(response.status)
    assert statuses == [200, 200, 200, 429]
