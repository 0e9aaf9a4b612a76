"""What the benchmarks share: running the service and a bare aiohttp server as real
processes on loopback ports, fresh databases, and a fixed-concurrency HTTP load."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def running(args: list[str], env: dict[str, str], health_url: str) -> Iterator[subprocess.Popen]:
    """A subprocess that is up once `health_url` answers; stopped with SIGTERM afterwards.

    Its stderr goes to a file, not a pipe: a pipe nobody reads fills up after 64 KB of log
    lines and then freezes the process in the middle of whatever it was doing.
    """
    log = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(args, env=env, cwd=env.get("BENCH_CWD", ROOT), stdout=subprocess.DEVNULL,
                               stderr=log, text=True)
    try:
        _wait_until_up(health_url, process)
        yield process
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        log.seek(0)
        sys.stderr.write(log.read()[-2000:])
        raise
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()


def service_env(database_url: str, var_dir: Path, port: int, *, log_level: str = "WARNING",
                **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update({
        "TICKETING_DATABASE_URL": database_url,
        "TICKETING_VAR_DIR": str(var_dir),
        "TICKETING_PORT": str(port),
        "TICKETING_BASE_URL": f"http://127.0.0.1:{port}",
        "TICKETING_LOG_LEVEL": log_level,
        "BENCH_CWD": str(var_dir.parent),
    })
    env.update({f"TICKETING_{k.upper()}": v for k, v in extra.items()})
    return env


def ticketing(*args: str, env: dict[str, str]) -> str:
    """Run a `ticketing` command; its stdout."""
    done = subprocess.run([sys.executable, "-m", "ticketing", *args], env=env, cwd=env["BENCH_CWD"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ticketing {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def database(backend: str) -> Iterator[tuple[str, Path]]:
    """A fresh, migrated database URL on `backend` and a scratch var directory."""
    with tempfile.TemporaryDirectory(prefix="ticketing-bench-") as scratch:
        var_dir = Path(scratch) / "var"
        var_dir.mkdir()
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{var_dir / 'bench.db'}"
            name = None
        else:
            from sqlalchemy.engine import make_url

            base = make_url(os.environ.get("TICKETING_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
            name = f"ticketing_bench_{uuid.uuid4().hex[:8]}"
            asyncio.run(_pg(base, f'CREATE DATABASE "{name}"'))
            url = base.set(database=name).render_as_string(hide_password=False)
        try:
            ticketing("migrate", env=service_env(url, var_dir, 8080))
            yield url, var_dir
        finally:
            if name is not None:
                asyncio.run(_pg(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _pg(url, statement: str) -> None:
    connection = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def bare_server(mode: str) -> Iterator[tuple[str, int]]:
    """The baseline: `python -m bench.bare` in its own process; yields its base URL and pid."""
    port = free_port()
    env = dict(os.environ, BENCH_CWD=str(ROOT))
    with running([sys.executable, "-m", "bench.bare", "--port", str(port), "--mode", mode], env,
                 f"http://127.0.0.1:{port}/healthz") as process:
        yield f"http://127.0.0.1:{port}", process.pid


def _tree(pid: int) -> list[int]:
    """`pid` and every process below it (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _stat(pid: int | str) -> tuple[str, float] | None:
    """The command name and user plus system CPU seconds of a process, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            head, tail = stat.read().rsplit(")", 1)
        fields = tail.split()
        return head.partition("(")[2], (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds_each(pid: int) -> dict[int, float]:
    """User plus system CPU seconds so far of `pid` and of each process below it."""
    return {member: found[1] for member in _tree(pid) if (found := _stat(member)) is not None}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds used so far by `pid` and its child processes."""
    return sum(cpu_seconds_each(pid).values())


def settle(pid: int, *, quiet: float = 0.5, timeout: float = 60) -> None:
    """Wait until `pid` and its children have been idle for `quiet` seconds: `serve` answers
    its health check before the worker it started has imported its modules, and that start-up
    is no purchase's cost."""
    deadline = time.monotonic() + timeout
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now - before < 0.02 * quiet:
            return
        before = now


def command_cpu_seconds(name: str) -> float:
    """CPU seconds so far of every process whose command is `name` (the PostgreSQL server's)."""
    return sum(found[1] for entry in os.listdir("/proc")
               if entry.isdigit() and (found := _stat(entry)) is not None and found[0] == name)


def rss_mb(pid: int) -> list[float]:
    """Resident memory of `pid` and each child process, in MB."""
    sizes = []
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sizes


def peak_rss_mb(pid: int) -> list[float]:
    """Peak resident memory (VmHWM) of `pid` and each child process, in MB."""
    sizes = []
    for member in _tree(pid):
        try:
            with open(f"/proc/{member}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sizes


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


@contextlib.contextmanager
def floor_server(database_url: str, *, webhook_secret: str = "", jitsi_secret: str = "") -> Iterator[tuple[str, int]]:
    """`python -m bench.floor` over the same database; yields its base URL and pid."""
    port = free_port()
    if database_url.startswith("sqlite"):
        target = database_url.split(":///", 1)[1]
    else:
        from sqlalchemy.engine import make_url

        target = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    env = dict(os.environ, BENCH_CWD=str(ROOT))
    with running([sys.executable, "-m", "bench.floor", "--port", str(port), "--database-url", target,
                  "--webhook-secret", webhook_secret, "--jitsi-secret", jitsi_secret], env,
                 f"http://127.0.0.1:{port}/healthz") as process:
        yield f"http://127.0.0.1:{port}", process.pid


@dataclasses.dataclass
class Result:
    label: str
    requests: int
    seconds: float
    latencies: list[float]
    statuses: dict[int, int]
    cpu: float | None = None  # CPU seconds the server's processes used during the run

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def cpu_ms(self) -> float | None:
        return None if self.cpu is None else self.cpu * 1000 / self.requests

    def line(self) -> str:
        cpu = f"{self.cpu_ms:6.2f} ms CPU/req" if self.cpu is not None else " " * 16
        return (f"{self.label:<34} {self.rate:9.0f} req/s   p50 {self.percentile(50) * 1000:7.2f} ms   "
                f"p99 {self.percentile(99) * 1000:7.2f} ms   {cpu}   statuses {dict(sorted(self.statuses.items()))}")

    def figures(self) -> dict:
        return {"rps": round(self.rate, 1), "p50_ms": round(self.percentile(50) * 1000, 2),
                "p99_ms": round(self.percentile(99) * 1000, 2),
                "cpu_ms_per_request": None if self.cpu is None else round(self.cpu_ms, 3)}


async def load(label: str, requests: list[Callable[[aiohttp.ClientSession], Awaitable[int]]],
               concurrency: int = 32, *, pid: int | None = None) -> Result:
    """Run the prepared requests with `concurrency` in flight; each returns its status. With
    `pid`, the CPU time that process (and its children) used meanwhile is recorded."""
    cpu_before = cpu_seconds(pid) if pid is not None else None
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for request in queue:
                started = time.perf_counter()
                status = await request(session)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before if pid is not None else None
    return Result(label, len(requests), seconds, latencies, statuses, cpu)


def ratio_line(service: Result, bare: Result) -> str:
    return f"{'ratio service/bare (req/s)':<34} {service.rate / bare.rate:9.2f}"


def ratios_line(service: Result, floor: Result, bare: Result) -> str:
    return (f"{'  ratio to floor / to bare':<34} {service.rate / floor.rate:9.2f} / {service.rate / bare.rate:.3f}"
            f"   ({load_average()})")
