"""Flash sale: N purchases posted as signed webhooks at once; how long until the N-th join
mail is accepted by an SMTP sink, and how many purchases per second that is end to end.

`ticketing serve` as shipped: on SQLite one process with its worker inside, on PostgreSQL
the web process and the worker process it starts. `--scale-out` runs, on PostgreSQL, two web
processes (`serve --processes 2`) and two workers (one more `ticketing worker`) and sells N
purchases for a capacity of `--capacity`: the rest are refunded automatically, and every
buyer gets one mail (the join link, or the refund notice); the counts are checked at the end.

    .venv/bin/python -m bench.flash_sale --n 500 [--backend sqlite|postgres|both]
        [--api-version 2023-10-16] [--floor] [--pending]

`--api-version` renders the events in that Stripe API version (default: the service's own);
`--floor` then measures, on the same database, the floor program's webhook ingest (as
`bench.webhooks` does) and prints the flash sale's end-to-end rate as a ratio to it.
`--pending` first writes every purchase's pending order and checkout session as the purchase
page does (not timed), so each webhook completes an order of ours: the path whose seat lock
spans BEGIN to COMMIT.
    .venv/bin/python -m bench.flash_sale --scale-out --n 2000 --capacity 1500
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import subprocess
import sys
import time

import aiohttp
from aiosmtpd.controller import Controller

from bench import webhooks
from bench.common import (
    command_cpu_seconds,
    cpu_seconds,
    cpu_seconds_each,
    database,
    floor_server,
    free_port,
    load,
    load_average,
    peak_rss_mb,
    running,
    service_env,
    settle,
    ticketing,
)
from ticketing.payments import simulated
from ticketing.payments.signature import sign
from ticketing.payments.versions import API_VERSION

WEBHOOK_SECRET = "whsec_flashsale_bench_secret_0123456789"


def _sink(port: int, count, arrivals, ready, stop) -> None:
    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with count.get_lock():
                if count.value < len(arrivals):
                    arrivals[count.value] = time.monotonic()  # system-wide: comparable across processes
                count.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()


class Sink:
    """An SMTP server that accepts everything and notes when each mail arrived, in a process
    of its own: in the bench client's process it waited for the interpreter lock behind the
    client posting webhooks, and every SMTP command of the service waited with it."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.port = free_port()
        context = multiprocessing.get_context("spawn")
        self._count = context.Value("q", 0)
        self._arrivals = context.Array("d", capacity, lock=False)
        self._ready, self._stop = context.Event(), context.Event()
        self._process = context.Process(target=_sink, daemon=True, name="bench smtp sink",
                                        args=(self.port, self._count, self._arrivals, self._ready, self._stop))

    def start(self) -> None:
        self._process.start()
        if not self._ready.wait(60):
            raise RuntimeError("the SMTP sink did not start")

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def count(self) -> int:
        return self._count.value

    @property
    def arrivals(self) -> list[float]:
        return list(self._arrivals[:min(self.count, len(self._arrivals))])


async def _create_webinar(base: str, key: str, capacity: int | None = None) -> dict:
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=2)
    body = {"title": "Flash sale", "starts_at": starts.isoformat(), "ends_at": (starts + dt.timedelta(hours=1)).isoformat(),
            "price_amount": 1000, "currency": "EUR"}
    if capacity is not None:
        body["capacity"] = capacity
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/api/webinars", json=body, headers={"Authorization": f"Bearer {key}"}) as response:
            if response.status != 201:
                raise RuntimeError(f"creating the webinar failed: {response.status} {await response.text()}")
            return await response.json()


async def _pending_orders(url: str, webinar_id: str, n: int) -> list[tuple[str, str]]:
    """N pending orders of one seat with their checkout sessions, written as the purchase route
    writes them (the order with the browser's key, then the session id): (order id, session id)."""
    import uuid

    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.orders import service as orders
    from ticketing.tickets import sealing

    engine = create_engine(url)
    made = []
    try:
        sessionmaker = create_sessionmaker(engine)
        for i in range(n):
            async with sessionmaker.begin() as session:
                order, _ = await orders.start_order(session, uuid.UUID(webinar_id), 1, f"buyer{i}@example.com",
                                                    browser_key=sealing.public_key(sealing.new_private_key()))
                session_id = simulated.new_session_id()
                await orders.attach_checkout_session(session, order.id, session_id)
            made.append((str(order.id), session_id))
    finally:
        await engine.dispose()
    return made


def _purchases(base: str, webinar: dict, n: int, api_version: str,
               pending: list[tuple[str, str]] | None = None) -> list:
    requests = []
    for i in range(n):
        order_id, session_id = pending[i] if pending else (None, simulated.new_session_id())
        event = simulated.checkout_completed_event(
            session_id=session_id, webinar_id=webinar["id"], quantity=1, order_id=order_id,
            email=f"buyer{i}@example.com", amount_total=webinar["price_amount"], currency=webinar["currency"].lower(),
            api_version=api_version,
        )
        body = simulated.encode(event)

        async def post(http: aiohttp.ClientSession, body=body) -> int:
            headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, WEBHOOK_SECRET)}
            async with http.post(f"{base}/webhooks/stripe", data=body, headers=headers) as response:
                await response.read()
                return response.status

        requests.append(post)
    return requests


async def _wait_for_mails(sink: Sink, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sink.count < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sink.count} of {n} mails arrived within {timeout:.0f} s")
        await asyncio.sleep(0.01)


async def _counts(url: str, webinar_id: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.db.models import Job, JobStatus, Order, OrderStatus, Refund, Ticket

    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            async def count(query) -> int:
                return await session.scalar(query)
            return {
                "tickets": await count(select(func.count()).select_from(Ticket)),
                "paid_orders": await count(select(func.count()).select_from(Order).where(Order.status == OrderStatus.PAID)),
                # Paid after the sell-out: oversold, and refunded once the refund job has run.
                "refunded_orders": await count(select(func.count()).select_from(Order).where(
                    Order.status.in_([OrderStatus.OVERSOLD, OrderStatus.REFUNDED]))),
                "refunds": await count(select(func.count()).select_from(Refund)),
                "jobs_not_done": await count(select(func.count()).select_from(Job).where(
                    Job.status != JobStatus.DONE, Job.kind != "mail.reminder")),
            }
    finally:
        await engine.dispose()


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def run(backend: str, n: int, concurrency: int, *, scale_out: bool = False, capacity: int | None = None,
        log_level: str = "INFO", api_version: str = API_VERSION, floor: bool = False, pending: bool = False) -> dict:
    sink = Sink()
    sink.start()
    try:
        with database(backend) as (url, var_dir):
            port = free_port()
            env = service_env(url, var_dir, port, smtp_url=f"smtp://127.0.0.1:{sink.port}", log_level=log_level,
                              stripe_webhook_secret=WEBHOOK_SECRET)
            key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com",
                            env=env).strip().splitlines()[-1]
            base = f"http://127.0.0.1:{port}"
            extra = None
            command = [sys.executable, "-m", "ticketing", "serve"] + (["--processes", "2"] if scale_out else [])
            with running(command, env, f"{base}/healthz") as service:
                if scale_out:
                    extra = subprocess.Popen([sys.executable, "-m", "ticketing", "worker"], env=env,
                                             cwd=env["BENCH_CWD"], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
                try:
                    settle(service.pid)
                    webinar = asyncio.run(_create_webinar(base, key, capacity))
                    made = asyncio.run(_pending_orders(url, webinar["id"], n)) if pending else None
                    requests = _purchases(base, webinar, n, api_version, made)
                    cpu_before = cpu_seconds(service.pid) + (cpu_seconds(extra.pid) if extra else 0)
                    each_before = cpu_seconds_each(service.pid)
                    postgres_before = command_cpu_seconds("postgres")
                    own_before = _own_cpu() + cpu_seconds(sink.pid)

                    async def sale():
                        started = time.monotonic()
                        result = await load(f"{backend}: webhooks", requests, concurrency=concurrency)
                        posted = time.monotonic()
                        await _wait_for_mails(sink, n, timeout=max(120, n))
                        return started, posted, result

                    started, posted, result = asyncio.run(sale())
                    cpu = cpu_seconds(service.pid) + (cpu_seconds(extra.pid) if extra else 0) - cpu_before
                    each = {p: c - each_before.get(p, 0) for p, c in cpu_seconds_each(service.pid).items()}
                    postgres_cpu = command_cpu_seconds("postgres") - postgres_before
                    own_cpu = _own_cpu() + cpu_seconds(sink.pid) - own_before
                    rss = peak_rss_mb(service.pid) + (peak_rss_mb(extra.pid) if extra else [])
                    time.sleep(1.5)  # the last batch of finished jobs and join counts is written
                    counts = asyncio.run(_counts(url, webinar["id"]))
                finally:
                    if extra is not None:
                        extra.terminate()
                        extra.wait(timeout=30)
            last = sorted(sink.arrivals)[n - 1]
            floor_result = None
            if floor:
                with floor_server(url, webhook_secret=webhooks.SECRET) as (floor_url, pid):
                    floor_result = webhooks._measure(f"floor {backend} webhook", floor_url, pid, webinar["id"], n,
                                                     concurrency)
            figures = {
                "backend": backend,
                "api_version": api_version,
                "pending_orders": pending,
                "scale_out": scale_out,
                "purchases": n,
                "capacity": capacity,
                "webhooks_per_second": round(result.rate, 1),
                "webhook_p50_ms": round(result.percentile(50) * 1000, 2),
                "webhook_p99_ms": round(result.percentile(99) * 1000, 2),
                "webhook_statuses": result.statuses,
                "seconds_to_last_webhook_answer": round(posted - started, 3),
                "seconds_to_nth_mail": round(last - started, 3),
                "mail_lag_after_last_webhook_s": round(last - posted, 3),
                "purchases_per_second_end_to_end": round(n / (last - started), 1),
                **({"floor_ingest_per_second": round(floor_result.rate, 1),
                    "end_to_end_ratio_to_floor_ingest": round(n / (last - started) / floor_result.rate, 3)}
                   if floor_result else {}),
                "cpu_ms_per_purchase_all_processes": round(cpu * 1000 / n, 2),
                # `serve` first, then the processes it started (web processes, the worker).
                "cpu_ms_per_purchase_each_service_process": [round(c * 1000 / n, 2) for c in each.values()],
                "cpu_ms_per_purchase_postgres_server": round(postgres_cpu * 1000 / n, 2),
                "cpu_ms_per_purchase_bench_client_and_smtp_sink": round(own_cpu * 1000 / n, 2),
                "peak_rss_mb_per_process": [round(r, 1) for r in rss],
                "mails_received": sink.count,
                **counts,
                "load_average": load_average(),
            }
            print(result.line())
            if floor_result is not None:
                print(floor_result.line())
            print(json.dumps(figures), flush=True)
            return figures
    finally:
        sink.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="purchases (default 500)")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--concurrency", type=int, default=32, help="webhooks in flight (default 32)")
    parser.add_argument("--scale-out", action="store_true",
                        help="PostgreSQL: two web processes and two workers, with --capacity")
    parser.add_argument("--capacity", type=int, default=None, help="the webinar's capacity (default none)")
    parser.add_argument("--log-level", default="INFO",
                        help="the service's TICKETING_LOG_LEVEL (default INFO, as shipped: an access line per "
                             "request and a line per mail, to a file in the scratch directory)")
    parser.add_argument("--api-version", default=API_VERSION, metavar="V",
                        help=f"the Stripe API version the events are rendered in (default {API_VERSION})")
    parser.add_argument("--floor", action="store_true",
                        help="then measure the floor's webhook ingest on the same database, and the ratio to it")
    parser.add_argument("--pending", action="store_true",
                        help="first write each purchase's pending order and checkout session as the purchase page "
                             "does, so every webhook completes an order of ours (default: sessions made elsewhere)")
    args = parser.parse_args(argv)
    if args.scale_out:
        capacity = args.capacity if args.capacity is not None else args.n * 3 // 4
        figures = run("postgres", args.n, args.concurrency, scale_out=True, capacity=capacity,
                      log_level=args.log_level)
        expected = {"tickets": capacity, "paid_orders": capacity, "refunded_orders": args.n - capacity,
                    "refunds": args.n - capacity, "mails_received": args.n, "jobs_not_done": 0}
        wrong = {k: (figures[k], v) for k, v in expected.items() if figures[k] != v}
        print("scale-out counts " + ("as expected: " + json.dumps(expected) if not wrong
                                     else "WRONG (got, expected): " + json.dumps(wrong)), flush=True)
        return
    for backend in ("sqlite", "postgres") if args.backend == "both" else (args.backend,):
        run(backend, args.n, args.concurrency, capacity=args.capacity, log_level=args.log_level,
            api_version=args.api_version, floor=args.floor, pending=args.pending)


if __name__ == "__main__":
    main()
