"""Start-of-webinar burst: Prosody's event_sync_component posting one `muc-occupant-joined` per
attendee, N joins spread evenly over a few seconds (open loop: each post leaves at its time,
whatever the answers before it), to `ticketing serve --no-worker` on SQLite and PostgreSQL.

Prints events/s, latency percentiles, and whether any post would have made Prosody retry
(a 5xx, or no answer within its default `api_timeout` of 20 s). Then the same burst again,
every post a duplicate (the component's retries), and the capacity at a fixed concurrency.

    .venv/bin/python -m bench.attendance --n 2000 --seconds 10 [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import time
import uuid

import aiohttp

from bench.common import Result, database, free_port, load, running, service_env, ticketing
from ticketing.db import create_engine, create_sessionmaker
from ticketing.db.models import Order, OrderStatus, Ticket, TicketStatus
from ticketing.orders.ticket_types import default_type
from ticketing.tickets.service import new_code

SECRET = "bench-events-" + secrets.token_urlsafe(24)
APP_SECRET = "bench-" + secrets.token_urlsafe(32)
PROSODY_TIMEOUT = 20.0  # the component's default api_timeout


async def _create_webinar(base_url: str, api_key: str) -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    data = {"title": "Burst", "starts_at": (now + dt.timedelta(minutes=1)).isoformat(),
            "ends_at": (now + dt.timedelta(hours=1)).isoformat(), "price_amount": 1000, "currency": "EUR"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as session:
        async with session.post(f"{base_url}/api/webinars", json=data) as response:
            if response.status != 201:
                raise RuntimeError(f"creating the webinar failed: {response.status} {await response.text()}")
            body = await response.json()
            return body["id"], body["room"]


async def _tickets(database_url: str, webinar_id: str, n: int) -> list[str]:
    engine = create_engine(database_url)
    ids = []
    try:
        async with create_sessionmaker(engine).begin() as session:
            order = Order(id=uuid.uuid4(), webinar_id=uuid.UUID(webinar_id), quantity=n, email="burst@example.com",
                          expected_amount=1000 * n, amount_total=1000 * n, currency="eur", amount_refunded=0,
                          status=OrderStatus.PAID)
            session.add(order)
            await session.flush()
            default = await default_type(session, order.webinar_id)
            for seq in range(n):
                ticket = Ticket(id=uuid.uuid4(), order_id=order.id, webinar_id=order.webinar_id, seq=seq,
                                ticket_type_id=default.id,
                                email=f"guest{seq}@example.com", name=f"Guest {seq}", code_hash=new_code()[1],
                                status=TicketStatus.VALID, join_count=0)
                session.add(ticket)
                ids.append(str(ticket.id))
    finally:
        await engine.dispose()
    return ids


def _joins(room: str, ticket_ids: list[str], muc: str = "conference.meet.example.org") -> list[tuple[str, bytes]]:
    """The bodies the component sends, in the shape of its README (include_user_info = true)."""
    now = int(time.time())
    bodies = []
    for count, ticket_id in enumerate(ticket_ids, start=1):
        node = uuid.uuid4()
        body = {"event_name": "muc-occupant-joined", "room_name": room, "room_jid": f"{room}@{muc}",
                "is_breakout": False, "active_occupants_count": count,
                "occupant": {"occupant_jid": f"{node}@meet.example.org/{secrets.token_hex(4)}", "joined_at": now,
                             "id": ticket_id, "name": f"Guest {count}", "email": f"guest{count}@example.com",
                             "moderator": False}}
        bodies.append(("occupant/joined", json.dumps(body).encode()))
    return bodies


HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json",
           "User-Agent": "Prosody (0.12.4; posix)"}


async def burst(label: str, base: str, bodies: list[tuple[str, bytes]], seconds: float) -> tuple[Result, int]:
    """Post each body at its slot in `seconds` (open loop); (result, posts Prosody would retry)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    retried = 0
    interval = seconds / len(bodies)
    timeout = aiohttp.ClientTimeout(total=PROSODY_TIMEOUT)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def post(kind: str, body: bytes) -> None:
            nonlocal retried
            started = time.perf_counter()
            try:
                async with session.post(f"{base}/jitsi/events/{kind}", data=body, headers=HEADERS) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 0 or status >= 500:
                retried += 1

        start = time.perf_counter()
        tasks = []
        for index, (kind, body) in enumerate(bodies):
            delay = start + index * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(kind, body)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return Result(label, len(bodies), elapsed, latencies, statuses), retried


def _posts(base: str, bodies: list[tuple[str, bytes]]):
    def make(kind: str, body: bytes):
        async def send(session: aiohttp.ClientSession) -> int:
            async with session.post(f"{base}/jitsi/events/{kind}", data=body, headers=HEADERS) as response:
                await response.read()
                return response.status
        return send
    return [make(kind, body) for kind, body in bodies]


def run_backend(backend: str, n: int, seconds: float, concurrency: int) -> None:
    with database(backend) as (url, var_dir):
        port = free_port()
        env = service_env(url, var_dir, port, jitsi_app_secret=APP_SECRET, jitsi_events_secret=SECRET)
        api_key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com", env=env).split()[-1]
        base = f"http://127.0.0.1:{port}"
        with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz"):
            webinar_id, room = asyncio.run(_create_webinar(base, api_key))
            warm = _joins(room, asyncio.run(_tickets(url, webinar_id, 100)))
            asyncio.run(load("warm-up", _posts(base, warm), 16))
            bodies = _joins(room, asyncio.run(_tickets(url, webinar_id, n)))
            first, retried = asyncio.run(burst(f"{backend}: {n} joins in {seconds:g} s", base, bodies, seconds))
            again, retried_again = asyncio.run(burst(f"{backend}: the same again (duplicates)", base, bodies, seconds))
            capacity = asyncio.run(load(f"{backend}: capacity at concurrency {concurrency}",
                                        _posts(base, _joins(room, asyncio.run(_tickets(url, webinar_id, n)))),
                                        concurrency))
        for result, would_retry in ((first, retried), (again, retried_again), (capacity, None)):
            print(f"{result.label:<44} {result.rate:7.0f} events/s   p50 {result.percentile(50) * 1000:7.1f} ms   "
                  f"p99 {result.percentile(99) * 1000:7.1f} ms   max {max(result.latencies) * 1000:7.1f} ms   "
                  f"statuses {dict(sorted(result.statuses.items()))}"
                  + ("" if would_retry is None else f"   Prosody would retry: {would_retry}"), flush=True)
        print(json.dumps({"bench": "attendance", "backend": backend, "n": n, "seconds": seconds,
                          "events_per_s": round(first.rate, 1), "p50_ms": round(first.percentile(50) * 1000, 1),
                          "p99_ms": round(first.percentile(99) * 1000, 1), "would_retry": retried,
                          "duplicates_p99_ms": round(again.percentile(99) * 1000, 1),
                          "capacity_events_per_s": round(capacity.rate, 1)}), flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="joins in the burst (default 2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="over how long they arrive (default 10)")
    parser.add_argument("--concurrency", type=int, default=64, help="for the capacity run (default 64)")
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    print(f"attendance burst: {args.n} occupant joins over {args.seconds:g} s, open loop", flush=True)
    for backend in args.backends.split(","):
        run_backend(backend, args.n, args.seconds, args.concurrency)


if __name__ == "__main__":
    main()
