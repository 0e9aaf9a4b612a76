"""The `ticketing` command: parse arguments, build settings, call into the package."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ticketing import __version__
from ticketing.errors import Invalid
from ticketing.inputs import email_address, has_control
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

    before = migrate.current_revision(settings.database_url)
    try:
        migrate.upgrade(settings.database_url)
    except migrate.MigrationRefused as error:
        raise CommandError(str(error)) from None
    after = migrate.current_revision(settings.database_url)
    where = _safe_url(settings.database_url)
    if before is None:
        print(f"database schema created at revision {after}: {where}")
    elif before != after:
        print(f"database upgraded from revision {before} to {after}: {where}")
    else:
        print(f"database is already at the newest revision {after}; nothing to do: {where}")


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
    from ticketing import serving

    _refuse_without_mail(settings)
    if args.processes > 1 and serving.is_sqlite(settings):
        raise CommandError("--processes needs PostgreSQL: on SQLite (one writer) serve runs as one process")
    _ensure_schema(settings)
    _check_can_listen(settings)  # before the worker starts, so a taken port ends serve in one line
    mode = []
    if settings.dev_checkout:
        mode.append(f"dev checkout (test payments at {settings.base_url}/dev/checkout/…)")
    if settings.dev_mail:
        mode.append(f"dev mail ({settings.mail_dir}/, listed at {settings.base_url}/dev/mail)")
    elif settings.mail_sink:
        mode.append(f"mail kept as files in {settings.mail_dir}/, not sent and not served (TICKETING_MAIL_TO_DISK)")

    def announce(_: str) -> None:
        print(f"ticketing {__version__} listening on http://{settings.host}:{settings.port}", flush=True)
        print(f"  public URL:  {settings.base_url}", flush=True)
        print(f"  console:     {settings.base_url}/org   (sign-in links: ticketing organizer login-link --email E)", flush=True)
        print(f"  API:         {settings.base_url}/api   (its OpenAPI document: {settings.base_url}/api/openapi.json)", flush=True)
        print(f"  health:      {settings.base_url}/healthz   metrics: {settings.base_url}/metrics", flush=True)
        for line in mode:
            print(f"  {line}", flush=True)

    try:
        # aiohttp's access logger, with our AccessLogger class (web/access_log.py, given to the
        # server through the app's handler_args): one line per request, no secrets.
        serving.serve(settings, worker=not args.no_worker, processes=args.processes, announce=announce)
    except serving.ServeError as error:
        raise CommandError(str(error)) from None
    except OSError as error:  # binding failed: port in use, not ours to take, or no such address
        raise CommandError(_listen_problem(settings, error)) from None


def _refuse_without_mail(settings: Settings) -> None:
    """Production (a Stripe key) sends mail; dev mode's sink there would be nobody's inbox."""
    problem = settings.mail_problem()
    if problem is not None:
        raise CommandError(problem)


def _check_can_listen(settings: Settings) -> None:
    """Bind (and let go of) every address `serve` will listen on, as aiohttp will bind them."""
    import socket

    try:
        found = socket.getaddrinfo(settings.host or None, settings.port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except OSError as error:
        raise CommandError(_listen_problem(settings, error)) from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as error:
                raise CommandError(_listen_problem(settings, error)) from None


def _listen_problem(settings: Settings, error: OSError) -> str:
    import errno

    where = f"cannot listen on {settings.host}:{settings.port}"
    if error.errno == errno.EADDRINUSE:
        return f"{where}: the port is in use (another `ticketing serve`?); stop it or set TICKETING_PORT"
    if error.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); set TICKETING_PORT"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{where}: no such address on this machine; check TICKETING_HOST"
    reason = error.strerror or str(error) or type(error).__name__
    return f"{where}: {' '.join(reason.split())}; check TICKETING_HOST and TICKETING_PORT"


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    import signal

    from ticketing.access.end_meeting import system_key
    from ticketing.workers import run_standalone

    _refuse_without_mail(settings)
    system_key(settings)  # a bad system key file stops the worker here, not at its first end-meeting job

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await run_standalone(settings, stop, concurrency=args.concurrency)

    _ensure_schema(settings)
    print(f"ticketing {__version__} worker on {_safe_url(settings.database_url)}; stop with Ctrl-C or SIGTERM", flush=True)
    _run(run())


def cmd_jobs_list(settings: Settings, args: argparse.Namespace) -> None:
    import ticketing.workers  # noqa: F401  (every kind registered, so its try limit is known)
    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.db.models import JobStatus
    from ticketing.jobs.queue import list_jobs
    from ticketing.jobs.registry import try_limit

    async def run():
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                status = JobStatus(args.status) if args.status else None
                return await list_jobs(session, status=status, kind=args.kind, limit=args.limit)
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    jobs = _run(run())
    if not jobs:
        print("no jobs")
        return
    print(f"{'ID':>8}  {'KIND':<22} {'STATUS':<8} {'TRIES':>5}  {'DUE (UTC)':<19}  LAST ERROR")
    for job in jobs:
        error = " ".join((job.last_error or "").split())[:100]
        print(f"{job.id:>8}  {job.kind[:22]:<22} {job.status.value:<8} {job.attempts:>2}/{try_limit(job.kind, job.max_attempts):<2}  "
              f"{job.due_at:%Y-%m-%d %H:%M:%S}  {error}")


def cmd_jobs_retry(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.jobs.queue import retry_dead_jobs, retry_job

    async def run() -> int:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                if args.all_dead:
                    return await retry_dead_jobs(session)
                await retry_job(session, args.id)
                return 1
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    count = _run(run())
    print(f"job {args.id} queued again" if args.id is not None else f"{count} dead job(s) queued again")


def _organizers(settings: Settings, work):
    """Run `work(session)` in one transaction on the configured database and return its result."""
    from ticketing.db import create_engine, create_sessionmaker

    async def run():
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    return _run(run())


def cmd_organizer_create(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.organizers import create_organizer

    async def work(session) -> tuple[str, str]:
        organizer, key = await create_organizer(session, args.name, args.email)
        return str(organizer.id), key

    organizer_id, key = _organizers(settings, work)
    print(f"organizer {organizer_id} created; its API key (shown once, keep it safe):")
    print(key)


def cmd_organizer_list(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.organizers import list_organizers

    listed = _organizers(settings, list_organizers)
    if not listed:
        print("no organizers; make one with `ticketing organizer create --name N --email E`")
        return
    print(f"{'ID':<36}  {'SIGN-IN ADDRESS':<32} {'WEBINARS':>8} {'TO COME':>7}  {'CREATED (UTC)':<16}  NAME")
    for row in listed:
        organizer = row.organizer
        print(f"{organizer.id!s:<36}  {organizer.email:<32} {row.webinars:>8} {row.upcoming:>7}  "
              f"{organizer.created_at:%Y-%m-%d %H:%M}  {organizer.name}")


def cmd_organizer_update(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.organizers import update_organizer

    if args.new_email is None and args.name is None:
        raise CommandError("nothing to change: give --new-email and/or --name")

    async def work(session) -> tuple[str, str]:
        organizer = await update_organizer(session, args.email, new_email=args.new_email, name=args.name)
        return organizer.email, organizer.name

    email, name = _organizers(settings, work)
    print(f"organizer updated: {name} signs in with {email}")


def cmd_organizer_remove(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.organizers import remove_organizer

    async def work(session) -> tuple[str, int]:
        organizer, webinars = await remove_organizer(session, args.email)
        return organizer.email, webinars

    email, webinars = _organizers(settings, work)
    gone = f", with {webinars} past or cancelled webinar(s)" if webinars else ""
    print(f"organizer {email} removed{gone}")


def cmd_organizer_login_link(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.accounts.signin import LIFETIME, cli_link
    from ticketing.db import create_engine, create_sessionmaker

    async def run() -> str:
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine).begin() as session:
                return await cli_link(session, args.email, settings.base_url)
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    link = _run(run())
    print(f"sign-in link for {args.email} (works once, for {int(LIFETIME.total_seconds() // 60)} minutes):")
    print(link)


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


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    import datetime as dt

    from ticketing.access.tokens import Tokens, room_url

    tokens = Tokens.from_settings(settings)
    token = tokens.manual_token(room=args.room, name=args.name, email=args.email, moderator=args.moderator,
                                ttl=args.ttl, now=dt.datetime.now(dt.UTC))
    print(room_url(settings, args.room, token) if args.url else token)


def cmd_jitsi_config(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.access import prosody
    from ticketing.access.tokens import Tokens
    from ticketing.attendance.prosody import event_sync_sections

    Tokens.from_settings(settings)  # a bad key file fails here, not in Prosody
    sections = prosody.jitsi_config(settings, args.target, extra=event_sync_sections(settings, args.target),
                                    system_keys_url=args.system_keys_url)
    if args.out is None:
        print(prosody.summary(settings) + "\n" + "\n".join(section.render() for section in sections), end="")
        return
    written = []
    for section in sections:
        if section.kind in (prosody.LUA, prosody.ENV, prosody.PEM) and not section.path.startswith("/"):
            path = args.out / section.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(section.lines) + "\n")
            written.append(str(path))
    print(prosody.summary(settings) + "".join(f"wrote {path}\n" for path in written)
          + "\n".join(section.render() for section in sections if section.kind == prosody.TEXT), end="")


def cmd_check(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.preflight import run_checks

    logging.getLogger("stripe").setLevel(logging.WARNING)  # its request log would interleave with the lines
    outcomes = _run(run_checks(settings))
    for outcome in outcomes:
        print(outcome.render(), flush=True)
    failed = [outcome.name for outcome in outcomes if not outcome.ok]
    if failed:
        raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")


def cmd_stripe_reconcile(settings: Settings, args: argparse.Namespace) -> None:
    import aiohttp

    import ticketing.workers  # noqa: F401  (the jobs it queues get their kind's try limit)
    from ticketing.db import create_engine, create_sessionmaker, utcnow
    from ticketing.payments.reconcile import reconcile, retry_unprocessed
    from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client

    client = create_stripe_client(settings)
    if client is None:
        raise CommandError("TICKETING_STRIPE_SECRET_KEY is not set: there is no Stripe account to read events from")

    async def run():
        import stripe

        engine = create_engine(settings.database_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            now = utcnow()
            retried = await retry_unprocessed(sessionmaker, settings, now=now)
            try:
                result = await reconcile(sessionmaker, settings, client, since=now - args.since, now=now)
            except stripe.StripeError as error:
                raise CommandError(f"Stripe did not list its events: {error.user_message or type(error).__name__}") from None
            except aiohttp.ClientError as error:
                raise CommandError(f"could not reach Stripe: {error or type(error).__name__}") from None
            return result, retried
        finally:
            await close_stripe_client(client)
            await engine.dispose()

    _ensure_schema(settings)
    result, retried = _run(run())
    print(f"{result.listed} Stripe events listed, {result.stored} not seen before, "
          f"{result.processed} processed; {retried} stored events retried")


def _webhook_call(settings: Settings, call):
    """Run `call(client)` against Stripe's API; a Stripe or network failure is one line."""
    import aiohttp
    import stripe

    from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client

    client = create_stripe_client(settings)
    if client is None:
        raise CommandError("TICKETING_STRIPE_SECRET_KEY is not set: dev mode signs its own events and needs no endpoint")
    logging.getLogger("stripe").setLevel(logging.WARNING)

    async def run():
        try:
            return await call(client)
        except stripe.StripeError as error:
            raise CommandError(f"Stripe answered {error.http_status or 'nothing'}: "
                               f"{' '.join(str(error.user_message or error).split())[:200]}") from None
        except aiohttp.ClientError as error:
            raise CommandError(f"could not reach Stripe: {error or type(error).__name__}") from None
        finally:
            await close_stripe_client(client)

    return _run(run())


def _print_comparison(endpoint: dict, settings: Settings) -> bool:
    from ticketing.payments.endpoint import compare

    found = compare(endpoint, settings)
    print(f"{endpoint.get('id')}  {endpoint.get('url')}  {endpoint.get('status')}  "
          f"API version {endpoint.get('api_version') or '(account default)'}  "
          f"{len(endpoint.get('enabled_events') or [])} event types")
    for line in found.problems:
        print(f"  differs: {line}")
    for line in found.notes:
        print(f"  note: {line}")
    if found.ok:
        print("  as this service needs it")
    return found.ok


def cmd_stripe_webhook_show(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.payments.endpoint import endpoint_url, endpoints_for

    endpoints = _webhook_call(settings, lambda client: endpoints_for(client, settings))
    if not endpoints:
        raise CommandError(f"no Stripe webhook endpoint for {endpoint_url(settings)}: "
                           f"make it with `ticketing stripe webhook create`")
    fitting = [_print_comparison(endpoint, settings) for endpoint in endpoints]
    if len(endpoints) > 1:
        print(f"{len(endpoints)} endpoints post to this URL: every event arrives once per endpoint "
              f"(answered as duplicates); delete the extra ones in Stripe's dashboard")
    if not any(fitting):
        raise CommandError("the endpoint differs from what this service needs (above)")


def cmd_stripe_webhook_create(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.payments.endpoint import create_endpoint

    endpoint, made = _webhook_call(settings, lambda client: create_endpoint(client, settings))
    if not made:
        print(f"an endpoint for {endpoint.get('url')} exists already; not making another:")
        if not _print_comparison(endpoint, settings):
            raise CommandError("it differs from what this service needs (above): fix it in Stripe's dashboard, "
                               "or delete it and run this command again")
        return
    _print_comparison(endpoint, settings)
    print("its signing secret, shown this once: set TICKETING_STRIPE_WEBHOOK_SECRET to it "
          "(beside the old one, comma-separated, while you switch):")
    print(endpoint.get("secret") or "")


def cmd_events_list(settings: Settings, args: argparse.Namespace) -> None:
    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.payments.retries import list_events

    async def run():
        engine = create_engine(settings.database_url)
        try:
            async with create_sessionmaker(engine)() as session:
                return await list_events(session, failed=args.failed, limit=args.limit)
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    events = _run(run())
    if not events:
        print("no failed events" if args.failed else "no stored events")
        return
    print(f"{'ID':<32} {'TYPE':<36} {'STATE':<8} {'TRIES':>5}  {'RECEIVED (UTC)':<19}  {'NEXT TRY (UTC)':<19}  ERROR")
    for event in events:
        error = " ".join((event.error or "").split())[:100]
        next_try = f"{event.next_attempt_at:%Y-%m-%d %H:%M:%S}" if event.state == "retrying" and event.next_attempt_at else "-"
        print(f"{event.id:<32} {event.type[:36]:<36} {event.state:<8} {event.attempts:>5}  "
              f"{event.received_at:%Y-%m-%d %H:%M:%S}  {next_try:<19}  {error}")


def cmd_events_retry(settings: Settings, args: argparse.Namespace) -> None:
    import ticketing.workers  # noqa: F401  (the jobs it queues get their kind's try limit)
    from ticketing.db import create_engine, create_sessionmaker
    from ticketing.db.models import StripeEvent
    from ticketing.payments.retries import release_for_retry
    from ticketing.payments.webhooks import process_stored_event

    async def run() -> tuple[str, str | None]:
        engine = create_engine(settings.database_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            await release_for_retry(sessionmaker, args.id)
            outcome = await process_stored_event(sessionmaker, settings, args.id)
            async with sessionmaker() as session:
                event = await session.get(StripeEvent, args.id)
            return outcome, event.error if event is not None else None
        finally:
            await engine.dispose()

    _ensure_schema(settings)
    if settings.log_level != "DEBUG":
        # The command says itself how the retry went, in one line; the stack trace the sweep
        # would log on a first failure is for the service's log (or TICKETING_LOG_LEVEL=DEBUG).
        logging.getLogger("ticketing.payments.retries").setLevel(logging.CRITICAL)
    outcome, error = _run(run())
    if outcome == "error":
        raise CommandError(f"event {args.id} failed again ({' '.join((error or '').split())[:200]}); "
                           f"the sweep retries it with backoff")
    print(f"event {args.id} processed: {outcome}")


# --- parser ---------------------------------------------------------------------------


def _quantity(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 50:
        raise argparse.ArgumentTypeError("must be from 1 to 50")
    return number


_TTL_PART = re.compile(r"(\d+)([dhms])")
MAX_TTL = dt.timedelta(days=30)


def _ttl(value: str) -> dt.timedelta:
    """`2h`, `90m`, `1h30m`, `45s`, `1d` → a duration from 1 second to 30 days."""
    text = value.strip().lower()
    if not text or _TTL_PART.sub("", text):
        raise argparse.ArgumentTypeError(f"not a duration: {value!r} (use e.g. 2h, 90m, 1h30m, 1d)")
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    ttl = sum((dt.timedelta(**{unit[u]: int(n)}) for n, u in _TTL_PART.findall(text)), dt.timedelta())
    if not dt.timedelta(seconds=1) <= ttl <= MAX_TTL:
        raise argparse.ArgumentTypeError(f"must be from 1s to 30d, got {value!r}")
    return ttl


def _room(value: str) -> str:
    from ticketing.webinars.service import ROOM_PATTERN

    room = value.strip().lower()
    if not ROOM_PATTERN.fullmatch(room):
        raise argparse.ArgumentTypeError(
            f"{value!r}: a room is 2 to 63 of a-z, 0-9, '_' and '-', starting with a letter or digit")
    return room


def _name(value: str) -> str:
    name = value.strip()
    if not name or len(name) > 200 or has_control(name):
        raise argparse.ArgumentTypeError("a name is 1 to 200 plain characters")
    return name


def _email(value: str) -> str:
    try:
        return email_address(value)
    except Invalid as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _concurrency(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 1000:
        raise argparse.ArgumentTypeError("must be from 1 to 1000")
    return number


def _processes(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be from 1 to 64")
    return number


def _job_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a job id is a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"a job id is a positive number, got {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ticketing", description="Paid webinar tickets: Stripe Checkout in, Jitsi Meet tokens out.")
    parser.add_argument("--version", action="version", version=f"ticketing {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

    serve = commands.add_parser("serve", help="run the HTTP service (and the job worker unless --no-worker)")
    serve.add_argument("--no-worker", action="store_true", help="do not run the job worker in this process")
    serve.add_argument("--processes", type=_processes, default=1,
                       help="web processes sharing the port (PostgreSQL only; default 1); the job worker "
                            "runs in a process of its own beside them on PostgreSQL")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run the job worker alone (mails, reminders, expiry, retries)")
    worker.add_argument("--concurrency", type=_concurrency, default=20, help="jobs run at once (default 20)")
    worker.set_defaults(handler=cmd_worker)

    jobs = commands.add_parser("jobs", help="look at and retry queued jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", parser_class=_Parser, required=True)
    jobs_list = jobs_commands.add_parser("list", help="list jobs, newest first (never their payloads)")
    jobs_list.add_argument("--status", choices=("queued", "running", "done", "dead"), help="only jobs in this status")
    jobs_list.add_argument("--kind", help="only jobs of this kind, e.g. mail.join")
    jobs_list.add_argument("--limit", type=_concurrency, default=100, help="at most this many (default 100)")
    jobs_list.set_defaults(handler=cmd_jobs_list)
    jobs_retry = jobs_commands.add_parser("retry", help="queue a dead job again with fresh attempts")
    which = jobs_retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=_job_id, help="the job's id (see `ticketing jobs list`)")
    which.add_argument("--all-dead", action="store_true", help="every dead job")
    jobs_retry.set_defaults(handler=cmd_jobs_retry)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date (alembic upgrade head)")
    migrate.set_defaults(handler=cmd_migrate)

    organizer = commands.add_parser("organizer", help="manage organizers")
    organizer_commands = organizer.add_subparsers(dest="organizer_command", metavar="ACTION", parser_class=_Parser, required=True)
    create = organizer_commands.add_parser("create", help="create an organizer and print its API key (last line)")
    create.add_argument("--name", required=True, help="the organizer's name")
    create.add_argument("--email", required=True, type=_email, help="the organizer's email address")
    create.set_defaults(handler=cmd_organizer_create)
    organizer_list = organizer_commands.add_parser("list", help="list organizers: sign-in address, webinars, name")
    organizer_list.set_defaults(handler=cmd_organizer_list)
    update = organizer_commands.add_parser("update", help="change an organizer's sign-in address or name")
    update.add_argument("--email", required=True, type=_email, help="the address the organizer signs in with now")
    update.add_argument("--new-email", type=_email, help="the new sign-in address")
    update.add_argument("--name", type=_name, help="the new name")
    update.set_defaults(handler=cmd_organizer_update)
    remove = organizer_commands.add_parser(
        "remove", help="delete an organizer with its past webinars (refused while one is on sale or to come)")
    remove.add_argument("--email", required=True, type=_email, help="the organizer's sign-in address")
    remove.set_defaults(handler=cmd_organizer_remove)
    login_link = organizer_commands.add_parser("login-link", help="print a one-time sign-in link to the organizer console (last line)")
    login_link.add_argument("--email", required=True, type=_email, help="the organizer's email address")
    login_link.set_defaults(handler=cmd_organizer_login_link)

    simulate = commands.add_parser("simulate", help="post signed Stripe events to the running service")
    simulate_commands = simulate.add_subparsers(dest="simulate_command", metavar="EVENT", parser_class=_Parser, required=True)
    checkout = simulate_commands.add_parser("checkout", help="a paid checkout.session.completed, like `stripe trigger`")
    checkout.add_argument("--webinar", required=True, metavar="ID", help="the webinar's id")
    checkout.add_argument("--email", required=True, type=_email, help="the buyer's email address")
    checkout.add_argument("--quantity", type=_quantity, default=1, help="seats bought (default 1)")
    checkout.add_argument("--url", help="the service's base URL (default TICKETING_BASE_URL)")
    checkout.set_defaults(handler=cmd_simulate_checkout)

    token = commands.add_parser("token", help="mint a Jitsi token by hand (support, debugging); prints it")
    token.add_argument("--room", required=True, type=_room, help="the room, e.g. widgets-101")
    token.add_argument("--name", required=True, type=_name, help="the display name in the room")
    token.add_argument("--email", type=_email, help="the email in the token (optional)")
    token.add_argument("--moderator", action="store_true", help="enter as moderator (room owner)")
    token.add_argument("--ttl", type=_ttl, default=dt.timedelta(hours=2), help="how long it is valid, e.g. 2h, 90m (default 2h)")
    token.add_argument("--url", action="store_true", help="print the whole Jitsi URL instead of the token alone")
    token.set_defaults(handler=cmd_token)

    check = commands.add_parser("check", help="check a configured installation before going live (one line per check)")
    check.set_defaults(handler=cmd_check)

    jitsi = commands.add_parser("jitsi-config", help="print the Jitsi settings (Prosody, docker-jitsi-meet) for this service")
    jitsi.add_argument("--target", choices=("debian", "docker"), default="debian",
                       help="debian: Prosody config of Debian's jitsi-meet packages (default); docker: docker-jitsi-meet .env and files")
    jitsi.add_argument("--out", type=Path, metavar="DIR",
                       help="write the files (jitsi.env, prosody/conf.d/…, system-keys/…) under DIR instead of printing them")
    jitsi.add_argument("--system-keys-url", type=_http_url, metavar="URL",
                       help="where Prosody fetches the system key's public key (default: the target's usual place)")
    jitsi.set_defaults(handler=cmd_jitsi_config)

    stripe_parser = commands.add_parser("stripe", help="talk to Stripe's API")
    stripe_commands = stripe_parser.add_subparsers(dest="stripe_command", metavar="ACTION", parser_class=_Parser, required=True)
    reconcile = stripe_commands.add_parser("reconcile", help="fetch Stripe events the webhook missed and process them")
    reconcile.add_argument("--since", type=_ttl, default=dt.timedelta(days=3),
                           help="how far back to look, e.g. 3d, 12h (default 3d, at most 30d)")
    reconcile.set_defaults(handler=cmd_stripe_reconcile)
    webhook = stripe_commands.add_parser("webhook", help="the webhook endpoint Stripe posts events to")
    webhook_commands = webhook.add_subparsers(dest="webhook_command", metavar="ACTION", parser_class=_Parser,
                                              required=True)
    webhook_create = webhook_commands.add_parser(
        "create", help="make the endpoint for {TICKETING_BASE_URL}/webhooks/stripe (the handled events, this "
                       "service's API version) and print its signing secret once; an existing one is shown instead")
    webhook_create.set_defaults(handler=cmd_stripe_webhook_create)
    webhook_show = webhook_commands.add_parser(
        "show", help="compare the endpoint for {TICKETING_BASE_URL}/webhooks/stripe with what this service needs")
    webhook_show.set_defaults(handler=cmd_stripe_webhook_show)

    events = commands.add_parser("events", help="look at and retry stored Stripe events")
    events_commands = events.add_subparsers(dest="events_command", metavar="ACTION", parser_class=_Parser, required=True)
    events_list = events_commands.add_parser("list", help="stored Stripe events, newest first (never their payloads)")
    events_list.add_argument("--failed", action="store_true",
                             help="only events whose processing failed: retrying with backoff, or parked")
    events_list.add_argument("--limit", type=_concurrency, default=100, help="at most this many (default 100)")
    events_list.set_defaults(handler=cmd_events_list)
    events_retry = events_commands.add_parser("retry", help="process a failed or parked event again now")
    events_retry.add_argument("id", type=_event_id, help="the event's id, e.g. evt_1Nq… (see `ticketing events list`)")
    events_retry.set_defaults(handler=cmd_events_retry)
    return parser


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or has_control(value):
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r}")
    return value.strip().rstrip("/")


def _event_id(value: str) -> str:
    event_id = value.strip()
    if not event_id or len(event_id) > 255 or has_control(event_id) or any(c.isspace() for c in event_id):
        raise argparse.ArgumentTypeError(f"not a Stripe event id: {value!r} (e.g. evt_1NqA…)")
    return event_id


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
    except BrokenPipeError:  # `ticketing jobs list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as error:  # one line for the user; the trace only with TICKETING_LOG_LEVEL=DEBUG
        from sqlalchemy.exc import DBAPIError

        from ticketing.errors import DomainError

        if isinstance(error, DomainError):
            message = error.message
        elif isinstance(error, DBAPIError | OSError) and "settings" in locals():
            from ticketing.preflight import database_problem

            message = database_problem(settings.database_url, error)
        else:
            message = f"{type(error).__name__}: {error}".splitlines()[0]
        logger.debug("command failed", exc_info=True)
        print(f"ticketing: error: {message}", file=sys.stderr)
        return 1
    return 0
