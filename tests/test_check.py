"""`ticketing check` through the real console script against real parts: the database (SQLite and
PostgreSQL, at and behind the newest migration), an SMTP server with AUTH (tests/smtp_sink.py),
the Stripe stand-in, a Jitsi stand-in, and the service itself as the RS256 key server."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.access.conftest import key_dir, rs256  # noqa: F401  (fixtures)
from tests.conftest import JITSI_APP_SECRET, SESSION_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.smtp_sink import SmtpSink
from tests.test_cli import arun, bare_env, cli_env  # noqa: F401  (fixtures)
from ticketing.db import migrate


def lines(result) -> dict[str, tuple[bool, str]]:
    """The check lines by name: (passed, what it said)."""
    found = {}
    for line in result.stdout.splitlines():
        state, _, rest = line.partition("  ")
        name, _, said = rest.strip().partition(": ")
        found[name] = (state.strip() == "ok", said)
    return found


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
async def jitsi() -> str:
    """A Jitsi stand-in: its web front answers 200 at the root."""
    async def front(request: web.Request) -> web.Response:
        return web.Response(text="<title>Jitsi Meet</title>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", front)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("")).rstrip("/")
    await server.close()


@pytest.fixture
def mail_server():
    sink = SmtpSink(credentials=("mailer", "s3cret"))
    sink.start()
    yield sink
    sink.stop()


def production(cli_env, stripe_standin, mail_server, jitsi, **extra: str) -> dict[str, str]:
    return {**cli_env, "TICKETING_STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "TICKETING_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET, "TICKETING_STRIPE_API_BASE": stripe_standin.url,
            "TICKETING_SMTP_URL": f"smtp://mailer:s3cret@127.0.0.1:{mail_server.port}",
            "TICKETING_BASE_URL": "https://tickets.example.com", "TICKETING_SESSION_KEY": SESSION_KEY,
            "TICKETING_JITSI_URL": jitsi, "TICKETING_JITSI_APP_SECRET": JITSI_APP_SECRET,
            "TICKETING_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16", **extra}


async def test_a_configured_installation_passes_every_check(tmp_path, cli_env, stripe_standin, mail_server, jitsi):
    env = production(cli_env, stripe_standin, mail_server, jitsi)
    assert (await arun(["stripe", "webhook", "create"], env, tmp_path)).returncode == 0
    [endpoint] = stripe_standin.webhook_endpoints
    result = await arun(["check"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = lines(result)
    assert all(ok for ok, _ in found.values()), result.stdout
    assert set(found) == {"settings", "database", "smtp", "stripe", "stripe webhook", "jitsi", "trusted proxies"}
    assert found["stripe webhook"][1].startswith(f"{endpoint} posts the handled events to "
                                                 "https://tickets.example.com/webhooks/stripe")
    assert "newest revision" in found["database"][1]
    assert found["smtp"][1].endswith("answers EHLO and accepts the login")
    assert mail_server.logins == ["mailer"] and mail_server.raw == []  # logged in, sent nothing
    assert stripe_standin.calls_to("GET", "/v1/events")
    assert "10.1.0.0/16" in found["trusted proxies"][1]


async def test_each_problem_is_its_own_line_with_what_to_do(tmp_path, cli_env, database_url, stripe_standin, jitsi):
    wrong_login = SmtpSink(credentials=("mailer", "other"))
    wrong_login.start()
    try:
        env = production(cli_env, stripe_standin, wrong_login, f"http://127.0.0.1:{_closed_port()}",
                         TICKETING_BASE_URL="http://tickets.example.com")
        env["TICKETING_SMTP_URL"] = f"smtp://mailer:s3cret@127.0.0.1:{wrong_login.port}"
        migrate.downgrade(database_url, "0007")
        result = await arun(["check"], env, tmp_path)
    finally:
        wrong_login.stop()
    assert result.returncode == 1
    assert result.stderr.startswith("ticketing: error: ") and len(result.stderr.splitlines()) == 1
    found = lines(result)
    assert found["settings"] == (False, "TICKETING_BASE_URL is http://tickets.example.com: buyers and Stripe need an "
                                        "https:// URL")
    assert found["database"][0] is False and "run `ticketing migrate`" in found["database"][1]
    assert "0007" in found["database"][1]
    assert found["smtp"][0] is False and "refused the login" in found["smtp"][1]
    assert found["jitsi"][0] is False and "TICKETING_JITSI_URL" in found["jitsi"][1]
    assert wrong_login.raw == []


async def test_a_missing_or_unfit_webhook_endpoint_is_a_failed_line(tmp_path, cli_env, stripe_standin, mail_server,
                                                                     jitsi):
    env = production(cli_env, stripe_standin, mail_server, jitsi)
    missing = await arun(["check"], env, tmp_path)
    assert missing.returncode == 1
    assert lines(missing)["stripe webhook"] == (
        False, "no endpoint for https://tickets.example.com/webhooks/stripe: run `ticketing stripe webhook create`")
    assert lines(missing)["stripe"][0] is True

    stripe_standin.webhook_endpoints["we_1"] = {
        "id": "we_1", "object": "webhook_endpoint", "api_version": None, "created": 1, "status": "enabled",
        "enabled_events": ["*"], "url": "https://tickets.example.com/webhooks/stripe"}
    unfit = await arun(["check"], env, tmp_path)
    ok, said = lines(unfit)["stripe webhook"]
    assert not ok and said.startswith("we_1 it has no API version of its own")


async def test_an_smtp_server_and_a_stripe_api_that_do_not_answer(tmp_path, cli_env, stripe_standin, jitsi):
    env = production(cli_env, stripe_standin, SmtpSink(), jitsi)
    env["TICKETING_SMTP_URL"] = f"smtp://127.0.0.1:{_closed_port()}"
    env["TICKETING_STRIPE_API_BASE"] = f"http://127.0.0.1:{_closed_port()}"
    result = await arun(["check"], env, tmp_path)
    assert result.returncode == 1
    found = lines(result)
    assert found["smtp"][0] is False and "cannot reach" in found["smtp"][1]
    assert found["stripe"][0] is False and "Stripe answered nothing" in found["stripe"][1]
    assert found["database"][0] and found["jitsi"][0]


async def test_rs256_checks_that_the_running_service_serves_the_current_key(tmp_path, cli_env, make_settings, start_client,
                                                                            rs256, jitsi):
    client = await start_client(make_settings(**rs256))
    base = str(client.make_url("")).rstrip("/")
    env = {**cli_env, "TICKETING_BASE_URL": base, "TICKETING_JITSI_URL": jitsi,
           **{f"TICKETING_{k.upper()}": v for k, v in rs256.items()}}
    result = await arun(["check"], env, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    ok, said = lines(result)["key server"]
    assert ok and "serves the current key" in said

    # Another key in the file than the service was started with: the check sees it.
    other = Path(rs256["jitsi_private_key_file"]).with_name("other.key")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()))
    result = await arun(["check"], {**env, "TICKETING_JITSI_PRIVATE_KEY_FILE": str(other)}, tmp_path)
    assert result.returncode == 1
    ok, said = lines(result)["key server"]
    assert not ok and "another key" in said


async def test_a_missing_postgresql_database_is_one_line_naming_it(tmp_path, bare_env, postgres_url):
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url).set(database="ticketing_never_created")
    env = {**bare_env, "TICKETING_DATABASE_URL": url.render_as_string(hide_password=False)}
    for args in (["migrate"], ["organizer", "list"]):
        result = await arun(args, env, tmp_path)
        assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
        assert "'ticketing_never_created' does not exist" in result.stderr and "createdb" in result.stderr
    result = await arun(["check"], env, tmp_path)
    assert result.returncode == 1
    assert "createdb" in lines(result)["database"][1]
