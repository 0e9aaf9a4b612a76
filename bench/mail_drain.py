"""Mail cost: N purchases queued through `serve --no-worker`, then one `ticketing worker` drains
their join mails into a local SMTP sink. Prints mails per second and the worker's CPU per
mail; run with two sizes, the difference of the CPU totals over the difference of the mails
is the cost of one mail without the worker's start-up. With `--profile FILE`, the worker
runs under py-spy (raw collapsed stacks in FILE).

    .venv/bin/python -m bench.mail_drain --n 300 --n 1500 [--backend postgres|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from bench.common import cpu_seconds, database, free_port, load, load_average, running, service_env, ticketing
from bench.flash_sale import WEBHOOK_SECRET, Sink, _create_webinar, _purchases


def drain(backend: str, n: int, profile: str | None = None) -> tuple[float, float]:
    """(seconds, worker CPU seconds) to deliver n queued join mails."""
    sink = Sink()
    sink.start()
    try:
        with database(backend) as (url, var_dir):
            port = free_port()
            env = service_env(url, var_dir, port, smtp_url=f"smtp://127.0.0.1:{sink.port}",
                              stripe_webhook_secret=WEBHOOK_SECRET)
            key = ticketing("organizer", "create", "--name", "Bench", "--email", "bench@example.com",
                            env=env).strip().splitlines()[-1]
            base = f"http://127.0.0.1:{port}"
            with running([sys.executable, "-m", "ticketing", "serve", "--no-worker"], env, f"{base}/healthz"):
                webinar = asyncio.run(_create_webinar(base, key))
                asyncio.run(load("queue", _purchases(base, webinar, n), 32))
            command = [sys.executable, "-m", "ticketing", "worker"]
            if profile:
                command = ["py-spy", "record", "-f", "raw", "-o", profile, "-r", "200", "--", *command]
            started = time.monotonic()
            worker = subprocess.Popen(command, env=env, cwd=env["BENCH_CWD"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            try:
                while sink.count < n:
                    if time.monotonic() - started > max(120, n):
                        raise RuntimeError(f"only {sink.count} of {n} mails arrived")
                    time.sleep(0.02)
                seconds = time.monotonic() - started
                cpu = cpu_seconds(worker.pid)
            finally:
                worker.send_signal(2)
                worker.wait(timeout=60)
            return seconds, cpu
    finally:
        sink.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="queued purchases; give two sizes (default 300, 1500)")
    parser.add_argument("--backend", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--profile", help="run the worker under py-spy, writing raw stacks here")
    args = parser.parse_args(argv)
    sizes = args.n or [300, 1500]
    runs = []
    for n in sizes:
        seconds, cpu = drain(args.backend, n, args.profile)
        runs.append((n, seconds, cpu))
        print(f"{args.backend}: {n} mails in {seconds:.2f} s = {n / seconds:.0f}/s; worker CPU {cpu:.2f} s "
              f"({cpu * 1000 / n:.2f} ms per mail with start-up)   ({load_average()})", flush=True)
    figures = {"bench": "mail_drain", "backend": args.backend, "runs": runs, "load_average": load_average()}
    if len(runs) >= 2:
        (n1, _, cpu1), (n2, _, cpu2) = runs[0], runs[-1]
        figures["cpu_ms_per_mail"] = round((cpu2 - cpu1) * 1000 / (n2 - n1), 2)
        print(f"worker CPU per mail, start-up excluded: {figures['cpu_ms_per_mail']:.2f} ms")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
