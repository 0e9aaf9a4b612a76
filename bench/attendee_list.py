"""The console's webinar page with a large attendee list: one organizer signed in through a
real sign-in link, one webinar with N tickets (orders of 1 to 5 seats, some revoked, some
given away, some mails failed), pages fetched one after another from `ticketing serve
--no-worker` on SQLite and PostgreSQL.

Prints, per kind of page (the first page, a later page, a search, a state filter, a sort),
the median and worst time to the last byte and the page's size.

    .venv/bin/python -m bench.attendee_list --n 2000 [--rounds 20] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import statistics
import sys
import time
import uuid

import aiohttp

from bench.common import database, free_port, load_average, running, service_env, ticketing
from ticketing.db import create_engine, create_sessionmaker
from ticketing.db.models import Order, OrderStatus, Ticket, TicketDelivery, TicketStatus
from ticketing.tickets.service import new_code

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def _create_webinar(base_url: str, api_key: str) -> str:
    starts = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    data = {"title": "Large webinar", "starts_at": starts.isoformat(), "ends_at": (starts + dt.timedelta(hours=2)).isoformat(),
            "price_amount": 2500, "currency": "EUR"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as session:
        async with session.post(f"{base_url}/api/webinars", json=data) as response:
            if response.status != 201:
                raise RuntimeError(f"creating the webinar failed: {response.status} {await response.text()}")
            return (await response.json())["id"]


async def _attendees(database_url: str, webinar_id: str, n: int) -> None:
    """N tickets in orders of 1 to 5 seats: every 10th order's second seat given away, every
    50th ticket revoked, every 70th ticket's mail failed."""
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine).begin() as session:
            made = order_number = 0
            now = dt.datetime.now(dt.UTC)
            while made < n:
                quantity = min(1 + order_number % 5, n - made)
                buyer = f"buyer{order_number}@example.com"
                order = Order(id=uuid.uuid4(), webinar_id=uuid.UUID(webinar_id), quantity=quantity, email=buyer,
                              expected_amount=2500 * quantity, amount_total=2500 * quantity, currency="eur",
                              amount_refunded=0, status=OrderStatus.PAID, paid_at=now - dt.timedelta(seconds=n - made))
                session.add(order)
                for seq in range(quantity):
                    given = order_number % 10 == 0 and seq == 1
                    revoked = made % 50 == 49
                    session.add(Ticket(
                        id=uuid.uuid4(), order_id=order.id, webinar_id=order.webinar_id, seq=seq,
                        email=f"guest{made}@example.com" if given else buyer,
                        name=f"Guest {made}" if given else f"Buyer {order_number}", code_hash=new_code()[1],
                        status=TicketStatus.REVOKED if revoked else TicketStatus.VALID,
                        revoked_reason="organizer" if revoked else None, join_count=0,
                        delivery_status=TicketDelivery.FAILED if made % 70 == 69 else TicketDelivery.SENT,
                        assigned_at=now))
                    made += 1
                order_number += 1
    finally:
        await engine.dispose()


async def _sign_in(session: aiohttp.ClientSession, base: str, link: str) -> None:
    async with session.get(link) as response:
        csrf = CSRF.search(await response.text()).group(1)
    async with session.post(link, data={"csrf_token": csrf}, allow_redirects=False) as response:
        if response.status != 303:
            raise RuntimeError(f"signing in failed: {response.status}")


async def _measure(base: str, link: str, webinar_id: str, rounds: int) -> dict[str, tuple[list[float], int]]:
    pages = {
        "first page": {},
        "page 20": {"page": "20"},
        "search 'guest1'": {"q": "guest1"},
        "filter revoked": {"state": "revoked"},
        "sort by email, desc": {"sort": "email", "dir": "desc"},
    }
    found: dict[str, tuple[list[float], int]] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await _sign_in(session, base, link)
        for label, query in pages.items():
            times, size = [], 0
            for _ in range(rounds + 1):
                started = time.perf_counter()
                async with session.get(f"{base}/org/webinars/{webinar_id}", params=query) as response:
                    body = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{label}: {response.status}")
                times.append(time.perf_counter() - started)
                size = len(body)
            found[label] = (times[1:], size)  # the first round warms caches
    return found


def run_backend(backend: str, n: int, rounds: int) -> None:
    with database(backend) as (url, var_dir):
        port = free_port()
        env = service_env(url, var_dir, port)
        api_key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com", env=env).split()[-1]
        base = f"http://127.0.0.1:{port}"
        with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz"):
            webinar_id = asyncio.run(_create_webinar(base, api_key))
            asyncio.run(_attendees(url, webinar_id, n))
            link = ticketing("organizer", "login-link", "--email", "bench@example.com", env=env).split()[-1]
            figures = asyncio.run(_measure(base, link, webinar_id, rounds))
        print(f"{backend}: webinar page with {n} attendees, {rounds} rounds each, {load_average()}", flush=True)
        for label, (times, size) in figures.items():
            print(f"  {label:<24} p50 {statistics.median(times) * 1000:7.1f} ms   max {max(times) * 1000:7.1f} ms   "
                  f"{size / 1024:6.1f} KiB", flush=True)
        print(json.dumps({"bench": "attendee_list", "backend": backend, "n": n, "rounds": rounds,
                          "pages": {label: {"p50_ms": round(statistics.median(t) * 1000, 1),
                                            "max_ms": round(max(t) * 1000, 1), "bytes": size}
                                    for label, (t, size) in figures.items()}}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="attendees of the webinar (default 2000)")
    parser.add_argument("--rounds", type=int, default=20, help="fetches of each page (default 20)")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    for backend in args.backends.split(","):
        run_backend(backend, args.n, args.rounds)


if __name__ == "__main__":
    main()
