"""Waitlist offers at scale: a sold-out webinar with a long confirmed waitlist gets many seats at
once (its capacity raised through the API), and one `ticketing worker` makes the offers and
mails them into a local SMTP sink. Prints the time from the API call until every offer mail
was accepted, and the worker's CPU per offer.

    .venv/bin/python -m bench.waitlist [--seats 500] [--waiting 2000] [--backend postgres|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid

import aiohttp
from sqlalchemy import update

from bench.common import cpu_seconds, database, free_port, load_average, running, service_env, ticketing
from bench.flash_sale import Sink, _create_webinar
from ticketing.db import create_engine, utcnow
from ticketing.db.models import WaitlistEntry, Webinar


async def _seed(url: str, webinar_id: str, seats: int, waiting: int) -> None:
    """Sell out the webinar and line up `waiting` confirmed people (one seat each), as the join
    and confirmation links would have; written directly, since their making is not measured."""
    engine = create_engine(url)
    now = utcnow()
    try:
        async with engine.begin() as connection:
            await connection.execute(update(Webinar).where(Webinar.id == uuid.UUID(webinar_id))
                                     .values(seats_taken=seats))
            rows = [{"id": uuid.uuid4(), "webinar_id": uuid.UUID(webinar_id), "email": f"w{i}@example.com",
                     "email_key": f"w{i}@example.com", "name": "", "quantity": 1, "code_hash": uuid.uuid4().hex * 2,
                     "held": False, "sent_at": now, "created_at": now, "confirmed_at": now} for i in range(waiting)]
            await connection.execute(WaitlistEntry.__table__.insert(), rows)
    finally:
        await engine.dispose()


async def _raise_capacity(base: str, key: str, webinar_id: str, capacity: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.patch(f"{base}/api/webinars/{webinar_id}", json={"capacity": capacity},
                              headers={"Authorization": f"Bearer {key}"}) as response:
            if response.status != 200:
                raise RuntimeError(f"raising the capacity failed: {response.status} {await response.text()}")


def run(backend: str, seats: int, waiting: int) -> dict:
    sink = Sink()
    sink.start()
    try:
        with database(backend) as (url, var_dir):
            port = free_port()
            env = service_env(url, var_dir, port, smtp_url=f"smtp://127.0.0.1:{sink.port}")
            key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com",
                            env=env).strip().splitlines()[-1]
            base = f"http://127.0.0.1:{port}"
            with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz"):
                webinar = asyncio.run(_create_webinar(base, key, capacity=seats))
                asyncio.run(_seed(url, webinar["id"], seats, waiting))
                worker = subprocess.Popen([sys.executable, "-m", "ticketing", "worker"], env=env, cwd=env["BENCH_CWD"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    time.sleep(2)  # the worker's start-up is not part of the figure
                    started_cpu = cpu_seconds(worker.pid)
                    started = time.monotonic()
                    asyncio.run(_raise_capacity(base, key, webinar["id"], 2 * seats))
                    while sink.count < seats:
                        if time.monotonic() - started > max(300, seats):
                            raise RuntimeError(f"only {sink.count} of {seats} offer mails arrived")
                        time.sleep(0.02)
                    seconds = time.monotonic() - started
                    cpu = cpu_seconds(worker.pid) - started_cpu
                    time.sleep(1)
                    extra = sink.count - seats  # an offer mailed twice would show here
                finally:
                    worker.send_signal(2)
                    worker.wait(timeout=60)
        return {"backend": backend, "seats": seats, "waiting": waiting, "seconds": round(seconds, 2),
                "offers_per_second": round(seats / seconds, 1), "worker_cpu_ms_per_offer": round(1000 * cpu / seats, 2),
                "extra_mails": extra, "load": load_average()}
    finally:
        sink.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=500)
    parser.add_argument("--waiting", type=int, default=2000)
    parser.add_argument("--backend", action="append", choices=("postgres", "sqlite"))
    args = parser.parse_args(argv)
    for backend in args.backend or ["sqlite", "postgres"]:
        result = run(backend, args.seats, args.waiting)
        print(f"waitlist {backend}: {args.seats} seats freed on a {args.waiting}-entry list, every offer mail out in "
              f"{result['seconds']} s ({result['offers_per_second']}/s), worker CPU "
              f"{result['worker_cpu_ms_per_offer']} ms per offer, {result['extra_mails']} extra mails; "
              f"{result['load']}")
        print(json.dumps(result))


if __name__ == "__main__":
    main()
