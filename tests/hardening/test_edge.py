"""Where requests enter: oversized request lines and headers get our error shape, the client
address comes from X-Forwarded-For / Forwarded only behind trusted proxies, and the per-address
limits of join links and API keys count failed look-ups only."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tests import factories
from tests.access.conftest import add_ticket
from tests.hardening.raw_http import raw_request
from ticketing.app import create_app

# --- headers over aiohttp's limits --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/webinars", "/webhooks/stripe"])
async def test_a_header_over_the_limit_is_431_json(client, path):
    response = await raw_request(client, f"POST {path} HTTP/1.1\r\nHost: x\r\n".encode()
                                 + b"Content-Length: 0\r\nX-Padding: " + b"a" * 9000)
    assert response.status == 431, response.body
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "headers_too_large"


async def test_a_huge_cookie_on_the_api_is_431_json_and_on_a_page_an_html_page(client):
    cookie = b"Cookie: session=" + b"c" * 20_000
    api = await raw_request(client, b"GET /api/webinars HTTP/1.1\r\nHost: x\r\n" + cookie)
    assert api.status == 431 and api.json()["error"]["code"] == "headers_too_large"
    page = await raw_request(client, b"GET /healthz-nope HTTP/1.1\r\nHost: x\r\n" + cookie)
    assert page.status == 431 and page.headers["content-type"].startswith("text/html")


async def test_too_many_headers_and_a_too_long_target_are_json_errors(client):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150)).rstrip(b"\r\n")
    response = await raw_request(client, b"GET /api/webinars HTTP/1.1\r\nHost: x\r\n" + many)
    assert response.status == 431 and response.json()["error"]["code"] == "headers_too_large"
    target = b"/api/webinars?q=" + b"q" * 9000
    response = await raw_request(client, b"GET " + target + b" HTTP/1.1\r\nHost: x")
    assert response.status == 414 and response.json()["error"]["code"] == "uri_too_long"


async def test_headers_within_the_limit_still_work(client, sessionmaker):
    _, key = await factories.organizer(sessionmaker)
    response = await raw_request(client, b"GET /api/webinars HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                 + key.encode() + b"\r\nX-Padding: " + b"a" * 8000)
    assert response.status == 200, response.body


# --- trusted proxies ------------------------------------------------------------------------------


@pytest.fixture
async def start_probed(make_settings):
    """The real app (every middleware) plus one route that shows what a handler sees."""
    clients: list[TestClient] = []

    async def start(**settings: str) -> TestClient:
        app = create_app(make_settings(**settings))

        async def probe(request: web.Request) -> web.Response:
            assert request.host.startswith("127.0.0.1:")  # X-Forwarded-Host is never believed
            return web.json_response({"remote": request.remote, "scheme": request.scheme, "secure": request.secure})

        app.router.add_get("/probe", probe)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def _seen(client: TestClient, **headers: str) -> dict:
    response = await client.get("/probe", headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_without_trusted_proxies_forwarded_headers_are_ignored(start_probed):
    client = await start_probed()
    seen = await _seen(client, **{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                                  "Forwarded": "for=198.51.100.7;proto=https"})
    assert seen == {"remote": "127.0.0.1", "scheme": "http", "secure": False}


async def test_an_untrusted_peer_cannot_claim_an_address(start_probed):
    client = await start_probed(trusted_proxies="10.0.0.1, 192.168.0.0/16")
    seen = await _seen(client, **{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"})
    assert seen == {"remote": "127.0.0.1", "scheme": "http", "secure": False}


async def test_x_forwarded_for_and_proto_from_a_trusted_proxy(start_probed):
    client = await start_probed(trusted_proxies="127.0.0.1, 10.0.0.0/8")
    assert await _seen(client, **{"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
                                  "X-Forwarded-Host": "evil.example"}) == {
        "remote": "203.0.113.9", "scheme": "https", "secure": True}
    # What the client wrote itself (the left part) is not believed: the first untrusted hop from the right is.
    assert (await _seen(client, **{"X-Forwarded-For": "1.1.1.1, 203.0.113.9, 10.1.2.3"}))["remote"] == "203.0.113.9"
    assert (await _seen(client, **{"X-Forwarded-Proto": "https"}))["scheme"] == "https"
    assert (await _seen(client))["remote"] == "127.0.0.1"


async def test_forwarded_from_a_trusted_proxy(start_probed):
    client = await start_probed(trusted_proxies="127.0.0.1")
    assert await _seen(client, Forwarded='for=198.51.100.7;proto=https') == {
        "remote": "198.51.100.7", "scheme": "https", "secure": True}
    assert (await _seen(client, Forwarded='for=1.1.1.1, for="[2001:db8::7]:4711"'))["remote"] == "2001:db8::7"
    assert (await _seen(client, Forwarded="for=unknown"))["remote"] == "127.0.0.1"


async def test_a_malformed_x_forwarded_for_from_a_trusted_proxy_is_400_json(start_probed):
    client = await start_probed(trusted_proxies="127.0.0.1")
    response = await client.get("/api/webinars", headers={"X-Forwarded-For": "not-an-address"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_request"


async def test_a_bad_trusted_proxies_value_stops_the_start_with_one_line(cli, cli_env):
    for value in ("10.0.0.1/8", "proxy.example.com", "10.0.0.1,,10.0.0.2"):
        result = await cli("serve", env={**cli_env, "TICKETING_TRUSTED_PROXIES": value, "TICKETING_PORT": "1"})
        assert result.returncode == 2, result
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("ticketing: error: TICKETING_TRUSTED_PROXIES:"), line


# --- per-address limits count failures only ------------------------------------------------------


async def test_a_whole_office_behind_one_address_joins_at_once(make_settings, start_client, sessionmaker):
    client = await start_client(make_settings(join_rate_per_address="3", join_rate_per_code="5",
                                              jitsi_url="https://meet.example.org"))
    webinar = await factories.webinar(sessionmaker, capacity=20)
    codes = [(await add_ticket(sessionmaker, webinar, email=f"p{i}@example.com"))[1] for i in range(12)]
    statuses = [(await client.get(f"/j/{code}", allow_redirects=False)).status for code in codes]
    assert statuses == [200] * 12  # waiting pages: the webinar starts in two days

    # Failed look-ups do count: unknown and malformed codes, then the address waits.
    failed = [(await client.get(f"/j/{code}", allow_redirects=False)).status
              for code in ("U" * 43, "bad", "V" * 43, "W" * 43)]
    assert failed == [404, 404, 404, 429]
    # The per-code limit still holds for one link.
    again = [(await client.get(f"/j/{codes[0]}", allow_redirects=False)).status for _ in range(6)]
    assert 429 in again


async def test_failed_api_keys_are_limited_per_address(start_probed, sessionmaker):
    client = await start_probed(api_key_rate_per_address="3", trusted_proxies="127.0.0.1")
    _, key = await factories.organizer(sessionmaker)
    office = {"X-Forwarded-For": "203.0.113.9"}
    for _ in range(10):  # successes do not count
        assert (await client.get("/api/webinars", headers={**office, "Authorization": f"Bearer {key}"})).status == 200
    bad = [await client.get("/api/webinars", headers={**office, "Authorization": f"Bearer tk_wrong{i}"})
           for i in range(4)]
    assert [r.status for r in bad] == [401, 401, 401, 429]
    limited = bad[-1]
    assert (await limited.json())["error"]["code"] == "too_many_requests"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # That address waits, even with the right key; another address is not affected.
    assert (await client.get("/api/webinars", headers={**office, "Authorization": f"Bearer {key}"})).status == 429
    other = {"X-Forwarded-For": "198.51.100.1", "Authorization": f"Bearer {key}"}
    assert (await client.get("/api/webinars", headers=other)).status == 200
