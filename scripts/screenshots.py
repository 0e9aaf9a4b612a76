"""The screenshots in docs/: a fresh service in dev mode on a temporary database, a few
simulated purchases, then the console and the buyer pages in headless Chromium, in English
and German, at desktop and phone width.

    .venv/bin/python scripts/screenshots.py [docs]

Needs Chromium (scripts/ensure-chromium) and a free loopback port; it touches nothing but
its temporary directory and the PNG files it writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TICKETING = str(Path(sys.executable).with_name("ticketing"))
# The pictures the README shows; the walk passes more pages, these are the ones kept.
WANTED = {"console-login-de-desktop", "console-list-en-desktop", "console-list-de-phone", "console-webinar-en-desktop",
          "console-webinar-de-phone", "console-new-errors-de-desktop", "console-settings-de-phone",
          "buyer-webinar-en-desktop", "buyer-webinar-de-phone", "buyer-success-en-phone", "buyer-success-de-desktop"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(env: dict[str, str], *args: str) -> str:
    """A `ticketing` command; its stdout, or the run stops with what it said."""
    done = subprocess.run([TICKETING, *args], env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ticketing {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def api(base: str, key: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.load(response)


def webinar_input(title: str, description: str, language: str, days: int, **more) -> dict:
    starts = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).replace(hour=16, minute=0, second=0, microsecond=0)
    return {"title": title, "description": description, "starts_at": starts.isoformat(),
            "ends_at": (starts + dt.timedelta(minutes=90)).isoformat(), "price_amount": 2500, "currency": "EUR",
            "capacity": 40, "language": language, **more}


async def shoot(page, directory: Path, name: str, *, widths=("desktop", "phone")) -> None:
    for label in widths:
        if f"{name}-{label}" not in WANTED:
            continue
        await page.set_viewport_size(DESKTOP if label == "desktop" else PHONE)
        await page.screenshot(path=str(directory / f"{name}-{label}.png"), full_page=True)
        print(f"{name}-{label}.png")
    await page.set_viewport_size(DESKTOP)


async def sign_in(page, env: dict[str, str], base: str) -> None:
    link = run(env, "organizer", "login-link", "--email", "ada@example.com").strip().splitlines()[-1]
    await page.goto(link)
    await page.click("form[action^='/org/login/'] button[type=submit]")
    await page.wait_for_url(f"{base}/org")


async def buy(page, base: str, webinar_id: str, email: str) -> str:
    """Buy a seat through the dev checkout page, as a buyer would; the success page's URL."""
    await page.goto(f"{base}/w/{webinar_id}")
    await page.click("form[action$='/checkout'] button[type=submit]")
    await page.fill("input[type=email]", email)
    await page.click("form button[type=submit]")
    await page.wait_for_url("**/checkout/success**")
    return page.url


async def pages(env: dict[str, str], base: str, key: str, directory: Path) -> None:
    english = api(base, key, "/api/webinars", webinar_input(
        "Widgets in practice", "Ninety minutes on **widgets**: choosing, fitting and keeping them running.", "en", 9))
    german = api(base, key, "/api/webinars", webinar_input(
        "Widgets in der Praxis", "Neunzig Minuten über **Widgets**: auswählen, einbauen, am Laufen halten.", "de", 12,
        timezone="Europe/Berlin"))
    for email, quantity in (("bea@example.com", 2), ("carl@example.org", 1), ("dana@example.net", 3)):
        run(env, "simulate", "checkout", "--webinar", english["id"], "--email", email, "--quantity", str(quantity))
    run(env, "simulate", "checkout", "--webinar", german["id"], "--email", "erik@example.de", "--quantity", "2")
    time.sleep(2)  # the worker sends the join mails

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        for lang, locale in (("en", "en-GB"), ("de", "de-DE")):
            context = await browser.new_context(locale=locale, timezone_id="Europe/Berlin", viewport=DESKTOP)
            page = await context.new_page()
            await page.goto(f"{base}/org/login")
            await shoot(page, directory, f"console-login-{lang}", widths=("desktop",))
            await sign_in(page, env, base)
            await shoot(page, directory, f"console-list-{lang}")
            await page.goto(f"{base}/org/webinars/{english['id']}")
            await shoot(page, directory, f"console-webinar-{lang}")
            await page.goto(f"{base}/org/webinars/new")
            await page.fill("#title", "Gizmos")
            await page.fill("#price", "viel")
            await page.click("form.org-form button[type=submit]")
            await page.wait_for_selector("p.error[role=alert]")
            await shoot(page, directory, f"console-new-errors-{lang}", widths=("desktop",))
            await page.goto(f"{base}/org/settings")
            await shoot(page, directory, f"console-settings-{lang}", widths=("phone",))
            await context.close()

        # Buyers: the English and the German webinar, each bought through the dev checkout.
        for lang, webinar in (("en", english), ("de", german)):
            context = await browser.new_context(locale="en-GB", timezone_id="Europe/Berlin", viewport=DESKTOP)
            page = await context.new_page()
            await page.goto(f"{base}/w/{webinar['id']}")
            await shoot(page, directory, f"buyer-webinar-{lang}")
            await buy(page, base, webinar["id"], f"fay.{lang}@example.com")
            await page.wait_for_selector("main h1")
            await page.wait_for_timeout(3000)  # the page learns the outcome from the webhook
            await shoot(page, directory, f"buyer-success-{lang}")
            await context.close()
        await browser.close()


def main() -> None:
    directory = Path(sys.argv[1] if len(sys.argv) > 1 else "docs").resolve()
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {name: value for name, value in os.environ.items() if not name.startswith("TICKETING_")}
        env |= {"TICKETING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/screens.db", "TICKETING_VAR_DIR": f"{tmp}/var",
                "TICKETING_PORT": str(port), "TICKETING_BASE_URL": base, "TICKETING_SWEEP_SECONDS": "1"}
        run(env, "migrate")
        key = run(env, "organizer", "create", "--name", "Ada Events", "--email", "ada@example.com").strip().splitlines()[-1]
        server = subprocess.Popen([TICKETING, "serve"], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"{base}/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            asyncio.run(pages(env, base, key, directory))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
