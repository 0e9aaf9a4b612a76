"""Webhook throughput: N unique signed purchases posted at concurrency 32 to `ticketing serve`
on SQLite and on PostgreSQL, beside a bare aiohttp handler that only reads the body.

    .venv/bin/python -m bench.webhooks --n 2000 [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time

import aiohttp

from bench.common import Result, bare_server, database, free_port, load, ratio_line, running, service_env, ticketing
from ticketing.payments.signature import sign
from ticketing.payments.simulated import checkout_completed_event, encode, new_session_id

SECRET = "whsec_bench_" + secrets.token_hex(16)


def _purchases(webinar_id: str, price: int, n: int) -> list[bytes]:
    return [
        encode(checkout_completed_event(
            session_id=new_session_id(), webinar_id=webinar_id, quantity=1, email=f"buyer{i}@example.com",
            amount_total=price, currency="eur",
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


def run_backend(backend: str, n: int, concurrency: int) -> tuple[Result, Result]:
    with database(backend) as (url, var_dir):
        port = free_port()
        env = service_env(url, var_dir, port, stripe_webhook_secret=SECRET)
        api_key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com", env=env).split()[-1]
        base = f"http://127.0.0.1:{port}"
        with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz"):
            webinar_id = asyncio.run(_create_webinar(base, api_key))
            warm = _posts(f"{base}/webhooks/stripe", _purchases(webinar_id, 1000, min(200, n)))
            asyncio.run(load("warm-up", warm, concurrency))
            requests = _posts(f"{base}/webhooks/stripe", _purchases(webinar_id, 1000, n))
            service = asyncio.run(load(f"ticketing {backend} webhook", requests, concurrency))
        with bare_server("read") as bare_url:
            bodies = _purchases(webinar_id, 1000, n)
            asyncio.run(load("warm-up", _posts(f"{bare_url}/webhooks/stripe", bodies[:200]), concurrency))
            bare = asyncio.run(load("bare aiohttp (reads body)", _posts(f"{bare_url}/webhooks/stripe", bodies), concurrency))
    return service, bare


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="purchases per backend (default 2000)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args(argv)
    print(f"webhooks: {args.n} unique signed checkout.session.completed events, concurrency {args.concurrency}")
    for backend in args.backends.split(","):
        service, bare = run_backend(backend, args.n, args.concurrency)
        print(service.line())
        print(bare.line())
        print(ratio_line(service, bare))
        print(json.dumps({"bench": "webhooks", "backend": backend, "service_rps": round(service.rate, 1),
                          "bare_rps": round(bare.rate, 1), "ratio": round(service.rate / bare.rate, 3),
                          "p50_ms": round(service.percentile(50) * 1000, 2), "p99_ms": round(service.percentile(99) * 1000, 2)}))


if __name__ == "__main__":
    main()
