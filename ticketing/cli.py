"""The `ticketing` command: parse arguments, build settings, call into the package."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from ticketing import __version__
from ticketing.settings import Settings, SettingsError

logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A command cannot go on; its message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not a usage dump
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _run(coro) -> object:
    return asyncio.run(coro)


# --- commands -------------------------------------------------------------------------


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.db import migrate

    migrate.upgrade(settings.database_url)
    print(f"database is at the newest schema: {_safe_url(settings.database_url)}")


def _ensure_schema(settings: Settings) -> None:
    """SQLite (one process) migrates itself; PostgreSQL must have run `ticketing migrate`."""
    from ticketing.db import migrate

    if not migrate.is_pending(settings.database_url):
        return
    if settings.database_url.startswith("sqlite"):
        migrate.upgrade(settings.database_url)
    else:
        raise CommandError("the database schema is not up to date; run `ticketing migrate` first")


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from aiohttp import web

    from ticketing.app import create_app

    _ensure_schema(settings)
    app = create_app(settings)
    mode = []
    if settings.dev_checkout:
        mode.append(f"dev checkout (test payments at {settings.base_url}/dev/checkout/…)")
    if settings.dev_mail:
        mode.append(f"dev mail ({settings.mail_dir}/, listed at {settings.base_url}/dev/mail)")

    def announce(_: str) -> None:
        print(f"ticketing {__version__} listening on http://{settings.host}:{settings.port}", flush=True)
        print(f"  public URL:  {settings.base_url}", flush=True)
        print(f"  health:      {settings.base_url}/healthz   metrics: {settings.base_url}/metrics", flush=True)
        for line in mode:
            print(f"  {line}", flush=True)

    web.run_app(app, host=settings.host, port=settings.port, print=announce, access_log=None)


def cmd_organizer_create(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.organizers import create_organizer

    async def run() -> tuple[str, str]:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                organizer, key = await create_organizer(session, args.name, args.email)
                return str(organizer.id), key
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    organizer_id, key = _run(run())
    print(f"organizer {organizer_id} created; its API key (shown once, keep it safe):")
    print(key)


def cmd_simulate_checkout(settings: Settings, args: argparse.Namespace) -> None:
    import aiohttp

    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.payments import simulated
    from ticketing.payments.signature import sign
    from ticketing.webinars.service import get_webinar, parse_id

    async def run() -> tuple[int, str]:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                webinar = await get_webinar(session, parse_id(args.webinar))
        finally:
            await engine.dispose()
        event = simulated.checkout_completed_event(
            session_id=simulated.new_session_id(), webinar_id=str(webinar.id), quantity=args.quantity,
            email=args.email, amount_total=webinar.price_amount * args.quantity, currency=webinar.currency,
        )
        body = simulated.encode(event)
        headers = {"Content-Type": "application/json", "Stripe-Signature": sign(body, settings.stripe_webhook_secrets[0])}
        url = f"{args.url or settings.base_url}/webhooks/stripe"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                async with http.post(url, data=body, headers=headers) as response:
                    return response.status, await response.text()
        except aiohttp.ClientError as error:
            raise CommandError(f"could not reach {url}: {error or type(error).__name__}; is `ticketing serve` running?") from None

    _ensure_schema(settings)
    status, text = _run(run())
    if status != 200:
        raise CommandError(f"the service answered {status}: {text.strip()[:300]}")
    print(f"checkout.session.completed delivered: {text.strip()}")


# --- parser ---------------------------------------------------------------------------


def _quantity(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 50:
        raise argparse.ArgumentTypeError("must be from 1 to 50")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ticketing", description="Paid webinar tickets: Stripe Checkout in, Jitsi Meet tokens out.")
    parser.add_argument("--version", action="version", version=f"ticketing {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (and the job worker unless --no-worker)")
    serve.add_argument("--no-worker", action="store_true", help="do not run the job worker in this process")
    serve.set_defaults(handler=cmd_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date (alembic upgrade head)")
    migrate.set_defaults(handler=cmd_migrate)

    organizer = commands.add_parser("organizer", help="manage organizers")
    organizer_commands = organizer.add_subparsers(dest="organizer_command", metavar="ACTION", parser_class=_Parser, required=True)
    create = organizer_commands.add_parser("create", help="create an organizer and print its API key (last line)")
    create.add_argument("--name", required=True, help="the organizer's name")
    create.add_argument("--email", required=True, help="the organizer's email address")
    create.set_defaults(handler=cmd_organizer_create)

    simulate = commands.add_parser("simulate", help="post signed Stripe events to the running service")
    simulate_commands = simulate.add_subparsers(dest="simulate_command", metavar="EVENT", parser_class=_Parser, required=True)
    checkout = simulate_commands.add_parser("checkout", help="a paid checkout.session.completed, like `stripe trigger`")
    checkout.add_argument("--webinar", required=True, metavar="ID", help="the webinar's id")
    checkout.add_argument("--email", required=True, help="the buyer's email address")
    checkout.add_argument("--quantity", type=_quantity, default=1, help="seats bought (default 1)")
    checkout.add_argument("--url", help="the service's base URL (default TICKETING_BASE_URL)")
    checkout.set_defaults(handler=cmd_simulate_checkout)
    return parser


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[Settings, argparse.Namespace], None] = args.handler
    try:
        settings = Settings.from_env()
        from ticketing import logs

        logs.configure(settings.log_level, settings.log_format)
        handler(settings, args)
    except SettingsError as error:
        print(f"ticketing: error: {error}", file=sys.stderr)
        return 2
    except CommandError as error:
        print(f"ticketing: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # one line for the user; the trace only with TICKETING_LOG_LEVEL=DEBUG
        from ticketing.errors import DomainError

        message = error.message if isinstance(error, DomainError) else f"{type(error).__name__}: {error}".splitlines()[0]
        logger.debug("command failed", exc_info=True)
        print(f"ticketing: error: {message}", file=sys.stderr)
        return 1
    return 0
