"""Join storm: N distinct valid join links opened at concurrency 32 against `ticketing serve`
(SQLite and PostgreSQL, HS256 and RS256); in the same run, by the same client, the floor
(bench/floor.py: one UPDATE … RETURNING and an HS256 token in plain aiohttp + asyncpg/aiosqlite)
and a bare aiohttp handler that only redirects.
Redirects are not followed; every request should answer 302 with a freshly minted token.

    .venv/bin/python -m bench.join_storm --n 2000 [--backends sqlite,postgres] [--algorithms HS256,RS256]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import secrets
import sys
import uuid
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common import (
    Result,
    bare_server,
    database,
    floor_server,
    free_port,
    load,
    load_average,
    peak_rss_mb,
    ratios_line,
    running,
    service_env,
    ticketing,
)
from ticketing.db import create_engine, create_sessionmaker
from ticketing.db.models import Order, OrderStatus, Ticket, TicketStatus
from ticketing.orders.ticket_types import default_type
from ticketing.tickets.service import new_code

SECRET = "bench-" + secrets.token_urlsafe(32)


def _jitsi_env(algorithm: str, var_dir: Path) -> dict[str, str]:
    # Limits off: the bench opens thousands of links from one address.
    extra = {"join_rate_per_code": "0", "join_rate_per_address": "0", "jitsi_url": "https://meet.example.org"}
    if algorithm == "HS256":
        return {**extra, "jitsi_app_secret": SECRET}
    key_file = var_dir / "jitsi.key"
    if not key_file.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return {**extra, "jitsi_private_key_file": str(key_file), "jitsi_key_id": "bench-1"}


async def _create_webinar(base_url: str, api_key: str) -> str:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    data = {"title": "Join storm", "starts_at": (now - dt.timedelta(minutes=1)).isoformat(),
            "ends_at": (now + dt.timedelta(hours=2)).isoformat(), "price_amount": 1000, "currency": "EUR"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as session:
        async with session.post(f"{base_url}/api/webinars", json=data) as response:
            if response.status != 201:
                raise RuntimeError(f"creating the webinar failed: {response.status} {await response.text()}")
            return (await response.json())["id"]


async def _issue_codes(database_url: str, webinar_id: str, n: int) -> list[str]:
    """N paid tickets whose codes we keep (the service itself only ever mails them)."""
    engine = create_engine(database_url)
    codes = []
    try:
        async with create_sessionmaker(engine).begin() as session:
            order = Order(id=uuid.uuid4(), webinar_id=uuid.UUID(webinar_id), quantity=n, email="storm@example.com",
                          expected_amount=1000 * n, amount_total=1000 * n, currency="eur", amount_refunded=0,
                          status=OrderStatus.PAID)
            session.add(order)
            await session.flush()
            default = await default_type(session, order.webinar_id)
            for seq in range(n):
                code, code_hash = new_code()
                codes.append(code)
                session.add(Ticket(id=uuid.uuid4(), order_id=order.id, webinar_id=order.webinar_id, seq=seq,
                                   ticket_type_id=default.id,
                                   email=f"guest{seq}@example.com", name=f"Guest {seq}", code_hash=code_hash,
                                   status=TicketStatus.VALID, join_count=0))
    finally:
        await engine.dispose()
    return codes


def _gets(base_url: str, codes: list[str]):
    def get(code: str):
        async def send(session: aiohttp.ClientSession) -> int:
            async with session.get(f"{base_url}/j/{code}", allow_redirects=False) as response:
                await response.read()
                return response.status
        return send
    return [get(code) for code in codes]


def run_backend(backend: str, algorithms: list[str], n: int, concurrency: int) -> list[tuple[Result, Result, Result]]:
    results = []
    with database(backend) as (url, var_dir):
        env = service_env(url, var_dir, 8080, jitsi_app_secret=SECRET)
        api_key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com", env=env).split()[-1]
        for algorithm in algorithms:
            port = free_port()
            env = service_env(url, var_dir, port, **_jitsi_env(algorithm, var_dir))
            base = f"http://127.0.0.1:{port}"
            with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz") as process:
                webinar_id = asyncio.run(_create_webinar(base, api_key))
                warm, codes = asyncio.run(_issue_codes(url, webinar_id, min(200, n))), asyncio.run(_issue_codes(url, webinar_id, n))
                asyncio.run(load("warm-up", _gets(base, warm), concurrency))
                service = asyncio.run(load(f"ticketing {backend} {algorithm} /j/", _gets(base, codes), concurrency,
                                           pid=process.pid))
                rss = max(peak_rss_mb(process.pid))
            with floor_server(url, jitsi_secret=SECRET) as (floor_url, pid):
                asyncio.run(load("warm-up", _gets(floor_url, warm), concurrency))
                floor = asyncio.run(load(f"floor {backend} HS256 /j/", _gets(floor_url, codes), concurrency, pid=pid))
            with bare_server("redirect") as (bare_url, pid):
                asyncio.run(load("warm-up", _gets(bare_url, codes[:200]), concurrency))
                bare = asyncio.run(load("bare aiohttp (redirect only)", _gets(bare_url, codes), concurrency, pid=pid))
            results.append((service, floor, bare))
            for result in (service, floor, bare):
                print(result.line())
            print(ratios_line(service, floor, bare))
            print(json.dumps({"bench": "join_storm", "backend": backend, "algorithm": algorithm, "n": n,
                              "service": service.figures(), "floor": floor.figures(), "bare": bare.figures(),
                              "ratio_to_floor": round(service.rate / floor.rate, 3),
                              "ratio_to_bare": round(service.rate / bare.rate, 4),
                              "service_peak_rss_mb": round(rss, 1), "load_average": load_average()}), flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="distinct join links per run (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--algorithms", default="HS256,RS256")
    args = parser.parse_args(argv)
    print(f"join storm: {args.n} distinct valid links, concurrency {args.concurrency}, redirects not followed", flush=True)
    for backend in args.backends.split(","):
        run_backend(backend, args.algorithms.split(","), args.n, args.concurrency)


if __name__ == "__main__":
    main()
