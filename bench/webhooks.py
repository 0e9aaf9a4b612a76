"""Webhook throughput: N unique signed purchases posted at concurrency 32 to `ticketing serve
--no-worker` on SQLite and on PostgreSQL; in the same run and by the same client, the floor
(bench/floor.py: the same durable work in plain aiohttp + asyncpg/aiosqlite) and a bare aiohttp
handler that only reads the body. Every figure is printed with its ratio to the floor and to
the bare handler, p50/p99 latency, and the server's CPU milliseconds per request. With
`--api-version V` (repeatable) the service ingests events rendered in each of those Stripe API
versions in turn, beside one floor run.

    .venv/bin/python -m bench.webhooks --n 2000 [--backends sqlite,postgres] [--rounds 1]
        [--api-version 2024-06-20 --api-version 2026-10-28.endive]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time

import aiohttp

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
from ticketing.payments.signature import sign
from ticketing.payments.simulated import checkout_completed_event, encode, new_session_id
from ticketing.payments.versions import API_VERSION

SECRET = "whsec_bench_" + secrets.token_hex(16)


def _purchases(webinar_id: str, price: int, n: int, api_version: str = API_VERSION) -> list[bytes]:
    return [
        encode(checkout_completed_event(
            session_id=new_session_id(), webinar_id=webinar_id, quantity=1, email=f"buyer{i}@example.com",
            amount_total=price, currency="eur", api_version=api_version,
        ))
        for i in range(n)
    ]


def _posts(url: str, bodies: list[bytes]):
    timestamp = int(time.time())
    signed = [(body, sign(body, SECRET, timestamp)) for body in bodies]

    def post(body: bytes, signature: str):
        async def send(session: aiohttp.ClientSession) -> int:
            headers = {"Content-Type": "application/json", "Stripe-Signature": signature}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status
        return send

    return [post(body, signature) for body, signature in signed]


async def _create_webinar(base_url: str, api_key: str) -> str:
    data = {"title": "Benchmark", "starts_at": "2099-01-01T10:00:00+00:00", "ends_at": "2099-01-01T11:00:00+00:00",
            "price_amount": 1000, "currency": "EUR"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as session:
        async with session.post(f"{base_url}/api/webinars", json=data) as response:
            if response.status != 201:
                raise RuntimeError(f"creating the webinar failed: {response.status} {await response.text()}")
            return (await response.json())["id"]


def _measure(label: str, base: str, pid: int, webinar_id: str, n: int, concurrency: int,
             api_version: str = API_VERSION) -> Result:
    warm = _posts(f"{base}/webhooks/stripe", _purchases(webinar_id, 1000, min(200, n), api_version))
    asyncio.run(load("warm-up", warm, concurrency))
    requests = _posts(f"{base}/webhooks/stripe", _purchases(webinar_id, 1000, n, api_version))
    return asyncio.run(load(label, requests, concurrency, pid=pid))


def run_backend(backend: str, n: int, concurrency: int, versions: tuple[str, ...] = (API_VERSION,)) -> dict[str, Result]:
    with database(backend) as (url, var_dir):
        port = free_port()
        env = service_env(url, var_dir, port, stripe_webhook_secret=SECRET)
        api_key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com", env=env).split()[-1]
        base = f"http://127.0.0.1:{port}"
        with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz") as service:
            webinar_id = asyncio.run(_create_webinar(base, api_key))
            results = {version: _measure(f"ticketing {backend} webhook, API version {version}", base, service.pid,
                                         webinar_id, n, concurrency, version) for version in versions}
            rss = max(peak_rss_mb(service.pid))
        with floor_server(url, webhook_secret=SECRET) as (floor_url, pid):
            results["floor"] = _measure(f"floor {backend} webhook", floor_url, pid, webinar_id, n, concurrency)
        with bare_server("read") as (bare_url, pid):
            results["bare"] = _measure("bare aiohttp (reads body)", bare_url, pid, webinar_id, n, concurrency)
    for version in versions:
        results[version].peak_rss_mb = rss
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="purchases per backend (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each backend this often")
    parser.add_argument("--api-version", action="append", dest="versions", metavar="V",
                        help=f"the Stripe API version the events are rendered in (repeatable; default {API_VERSION})")
    args = parser.parse_args(argv)
    versions = tuple(args.versions or (API_VERSION,))
    print(f"webhooks: {args.n} unique signed checkout.session.completed events, concurrency {args.concurrency}",
          flush=True)
    for backend in args.backends.split(","):
        for _ in range(args.rounds):
            results = run_backend(backend, args.n, args.concurrency, versions)
            floor, bare = results["floor"], results["bare"]
            for result in (*(results[v] for v in versions), floor, bare):
                print(result.line())
            for version in versions:
                service = results[version]
                print(f"API version {version}: " + ratios_line(service, floor, bare))
                print(json.dumps({"bench": "webhooks", "backend": backend, "n": args.n, "api_version": version,
                                  "service": service.figures(), "floor": floor.figures(), "bare": bare.figures(),
                                  "ratio_to_floor": round(service.rate / floor.rate, 3),
                                  "ratio_to_bare": round(service.rate / bare.rate, 4),
                                  "service_peak_rss_mb": round(service.peak_rss_mb, 1),
                                  "load_average": load_average()}), flush=True)


if __name__ == "__main__":
    main()
