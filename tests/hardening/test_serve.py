"""`ticketing serve` as an operator meets it: a page at the root URL it prints, one access log
line per request without secrets, and one clear line when its port is taken."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import signal
import socket
import subprocess

import aiohttp
import pytest

from tests import factories
from tests.access.conftest import add_ticket, move_webinar
from tests.hardening.conftest import TICKETING
from tests.pages import accessibility_problems, screenshots
from ticketing.db import utcnow
from ticketing.web.access_log import loggable_path

START_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_secret_paths_are_cut():
    assert loggable_path("/j/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789") == "/j/…"
    assert loggable_path("/org/login/tok_123") == "/org/login/…"
    assert loggable_path("/o/code") == "/o/…" and loggable_path("/c/code/more") == "/c/…"
    assert loggable_path("/org") == "/org" and loggable_path("/w/123") == "/w/123" and loggable_path("/j/") == "/j/"


async def test_each_request_is_one_access_line_without_secrets(client, sessionmaker, caplog):
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    secrets = [code, "tok_s3cret", "ordercode99", "certcode77", "qsecret"]
    for path in (f"/j/{code}", "/org/login/tok_s3cret", "/o/ordercode99", "/c/certcode77", "/healthz?token=qsecret",
                 "/"):
        await client.get(path, allow_redirects=False)
    lines = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert [r.getMessage() for r in lines] == [
        "GET /j/…", "GET /org/login/…", "GET /o/…", "GET /c/…", "GET /healthz", "GET /"]
    assert [r.status for r in lines] == [200, 404, 404, 404, 200, 200]
    assert all(r.client == "127.0.0.1" and r.duration_ms >= 0 for r in lines)
    everything = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert not [s for s in secrets if s in everything]


async def test_admissions_into_the_room_are_logged_at_debug_and_refusals_at_info(make_settings, start_client,
                                                                                  sessionmaker, caplog):
    caplog.set_level(logging.DEBUG, logger="aiohttp.access")
    client = await start_client(make_settings(jitsi_app_secret="s" * 32, jitsi_url="https://meet.example.com/acme"))
    webinar = await factories.webinar(sessionmaker)
    now = utcnow()
    await move_webinar(sessionmaker, webinar, now - dt.timedelta(minutes=5), now + dt.timedelta(hours=1))
    _, code = await add_ticket(sessionmaker, webinar)
    assert (await client.get(f"/j/{code}", allow_redirects=False)).status == 302
    assert (await client.get("/j/" + "x" * 43, allow_redirects=False)).status == 404
    lines = [(r.levelno, r.getMessage(), r.status) for r in caplog.records if r.name == "aiohttp.access"]
    assert lines == [(logging.DEBUG, "GET /j/…", 302), (logging.INFO, "GET /j/…", 404)]


async def test_serve_prints_a_url_that_answers_and_logs_json_access_lines(cli_env, tmp_path, sessionmaker):
    port = _free_port()
    webinar = await factories.webinar(sessionmaker)
    _, code = await add_ticket(sessionmaker, webinar)
    env = {**cli_env, "TICKETING_PORT": str(port), "TICKETING_LOG_FORMAT": "json"}
    server = await asyncio.create_subprocess_exec(str(TICKETING), "serve", "--no-worker", env=env, cwd=tmp_path,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner = (await asyncio.wait_for(server.stdout.readline(), START_TIMEOUT)).decode()
        url = banner.split("listening on ")[1].strip()
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/") as response:
                assert response.status == 200
                page = await response.text()
            async with http.get(f"{url}/j/{code}", allow_redirects=False) as response:
                assert response.status == 200  # the waiting page: the webinar starts in two days
    finally:
        server.send_signal(signal.SIGINT)
        await asyncio.wait_for(server.wait(), 30)
    assert "organizer console" in page.lower()
    stderr = (await server.stderr.read()).decode()
    access = [json.loads(line) for line in stderr.splitlines()
              if line.startswith("{") and json.loads(line).get("name") == "aiohttp.access"]
    assert [(a["message"], a["status"]) for a in access] == [("GET /", 200), ("GET /j/…", 200)]
    assert code not in stderr


async def test_serve_on_a_port_in_use_is_one_line(cli_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await asyncio.wait_for(asyncio.create_subprocess_exec(
            str(TICKETING), "serve", env={**cli_env, "TICKETING_PORT": str(port)}, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE), START_TIMEOUT)
        _, stderr = await asyncio.wait_for(result.communicate(), START_TIMEOUT)
    stderr_text = stderr.decode()
    assert result.returncode == 1
    assert stderr_text.strip().splitlines() == [
        f"ticketing: error: cannot listen on 127.0.0.1:{port}: the port is in use (another `ticketing serve`?); "
        "stop it or set TICKETING_PORT"]


async def test_serve_on_an_address_not_on_this_machine_is_one_line(cli_env, tmp_path):
    result = await asyncio.create_subprocess_exec(
        str(TICKETING), "serve", env={**cli_env, "TICKETING_HOST": "192.0.2.1", "TICKETING_PORT": str(_free_port())},
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, stderr = await asyncio.wait_for(result.communicate(), START_TIMEOUT)
    assert result.returncode == 1
    [line] = stderr.decode().strip().splitlines()
    assert line.startswith("ticketing: error: cannot listen on 192.0.2.1:") and "TICKETING_HOST" in line


@pytest.mark.browser
async def test_the_landing_page_in_a_browser(browser, client, screenshot_dir):
    page = await browser.new_page()
    response = await page.goto(str(client.make_url("/")))
    assert response.status == 200
    assert await page.title() == "Paid webinars · Webinars"
    assert await page.locator("h1").inner_text() == "Paid webinars in Jitsi Meet"
    for name in ("Open the organizer console", "API description (OpenAPI)", "Read the mail this service has written",
                 "Health", "Metrics"):
        assert await page.get_by_role("link", name=name).count() == 1, name
    assert await accessibility_problems(page) == []
    for path in await screenshots(page, screenshot_dir, "home"):
        assert path.stat().st_size > 1000

    # By keyboard: Tab to the dev mail link and follow it.
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.textContent") == "Read the mail this service has written":
            break
    else:
        pytest.fail("the dev mail link is not reachable by Tab")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url.endswith("/dev/mail")
    assert await page.locator("h1").inner_text() == "Dev mail"
