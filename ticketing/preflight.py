"""`ticketing check`: the preflight of a configured installation, one line per check with what to
do when it fails. Nothing is sent or changed: the SMTP server gets EHLO (and AUTH) and QUIT, Stripe
two reads (events, webhook endpoints), Jitsi and the key server one GET each.
"""

from __future__ import annotations

import asyncio
import dataclasses
from urllib.parse import urlsplit

import aiohttp
import aiosmtplib
import stripe

from ticketing.access.keys import kid_digest, load_private_key, public_pem
from ticketing.access.prosody import key_server_url
from ticketing.db import is_unavailable, migrate
from ticketing.mail.sending import SmtpServer
from ticketing.payments.endpoint import compare, endpoint_url, endpoints_for
from ticketing.payments.stripe_api import close_stripe_client, create_stripe_client
from ticketing.settings import Settings

TIMEOUT = 10


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One check: its name, whether it passed, and the line that says so (or what to do)."""

    name: str
    ok: bool
    line: str

    def render(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name}: {self.line}"


def _production(settings: Settings) -> bool:
    return settings.stripe_secret_key is not None


def check_settings(settings: Settings) -> Outcome:
    """What production needs beyond what every command refuses to start without."""
    if not _production(settings):
        return Outcome("settings", True, "dev mode (no TICKETING_STRIPE_SECRET_KEY): test payments, mail "
                       + ("into the dev sink" if settings.dev_mail else "through TICKETING_SMTP_URL"))
    problems = []
    mail_problem = settings.mail_problem()
    if mail_problem is not None:
        problems.append(mail_problem)
    if urlsplit(settings.base_url).scheme != "https":
        problems.append(f"TICKETING_BASE_URL is {settings.base_url}: buyers and Stripe need an https:// URL")
    kept = settings.var_dir / "session_key"
    if kept.is_file() and kept.read_text().strip() == settings.session_key:
        problems.append("set TICKETING_SESSION_KEY (the generated one is this machine's alone)")
    if not settings.stripe_webhook_secrets:
        problems.append("set TICKETING_STRIPE_WEBHOOK_SECRET")
    if problems:
        return Outcome("settings", False, "; ".join(problems))
    if settings.mail_sink:
        return Outcome("settings", True, f"staging: Stripe, https base URL, session key and webhook secret set; "
                       f"mail kept as files in {settings.mail_dir} (TICKETING_MAIL_TO_DISK), not sent")
    return Outcome("settings", True, "production: Stripe, SMTP, https base URL, session key and webhook secret set")


async def check_database(settings: Settings) -> Outcome:
    try:
        current = await migrate.revision(settings.database_url)
    except Exception as error:  # whatever the driver raises, it becomes the one line
        return Outcome("database", False, database_problem(settings.database_url, error))
    newest = migrate.head(settings.database_url)
    if current == newest:
        return Outcome("database", True, f"answers, at the newest revision {newest}")
    where = f"at revision {current}" if current else "empty"
    return Outcome("database", False, f"answers but is {where}, not {newest}: run `ticketing migrate`")


def database_problem(database_url: str, error: BaseException) -> str:
    """One line for a database that cannot be used, naming it and what to do."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    text = f"{error.__cause__ or error}"
    if url.get_backend_name() == "postgresql" and ("does not exist" in text and "database" in text):
        return (f"the PostgreSQL database {url.database!r} does not exist on {url.host or 'localhost'}:{url.port or 5432}; "
                f"create it (createdb -h {url.host or 'localhost'} -U {url.username or 'postgres'} {url.database}, "
                f"or CREATE DATABASE {url.database};), then run `ticketing migrate`")
    reason = " ".join(text.split())[:200] or type(error).__name__
    hint = "is the server running and the URL right?" if is_unavailable(error) else "check TICKETING_DATABASE_URL"
    return f"cannot use {url.render_as_string(hide_password=True)}: {reason}; {hint}"


async def check_smtp(settings: Settings) -> Outcome:
    if settings.smtp_url is None:
        return Outcome("smtp", not _production(settings), "no TICKETING_SMTP_URL: mail goes to the dev sink"
                       + ("" if not _production(settings) else "; set it for production"))
    server = SmtpServer.from_url(settings.smtp_url)
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, use_tls=server.use_tls,
                             start_tls=server.start_tls, timeout=TIMEOUT)
    where = f"{server.host}:{server.port}"
    try:
        await client.connect()  # greets with EHLO (and STARTTLS when the URL asks for it)
        if server.username:
            await client.login(server.username, server.password or "")
        await client.quit()
    except aiosmtplib.SMTPAuthenticationError as error:
        return Outcome("smtp", False, f"{where} refused the login ({error.code} {error.message.strip()}): "
                                      f"check the user and password in TICKETING_SMTP_URL")
    except aiosmtplib.SMTPTimeoutError as error:
        return Outcome("smtp", False, f"{where} did not answer in time ({error}); check host, port and TLS in TICKETING_SMTP_URL")
    except (aiosmtplib.SMTPConnectError, OSError) as error:
        return Outcome("smtp", False, f"cannot reach {where} ({error}); check host and port in TICKETING_SMTP_URL")
    except aiosmtplib.SMTPException as error:
        return Outcome("smtp", False, f"{where}: {error}; check host, port and TLS in TICKETING_SMTP_URL")
    finally:
        client.close()
    return Outcome("smtp", True, f"{where} answers EHLO" + (" and accepts the login" if server.username else ""))


async def check_stripe(settings: Settings) -> Outcome:
    client = create_stripe_client(settings)
    if client is None:
        return Outcome("stripe", True, "no key: dev checkout (test payments on this service's own page)")
    try:
        await client.v1.events.list_async({"limit": 1})
    except stripe.AuthenticationError:
        return Outcome("stripe", False, "Stripe refused TICKETING_STRIPE_SECRET_KEY: copy the secret key again")
    except stripe.PermissionError:
        return Outcome("stripe", False, "the restricted key may not read events: give it read access to Events")
    except stripe.StripeError as error:
        return Outcome("stripe", False, f"Stripe answered {error.http_status or 'nothing'}: "
                                        f"{' '.join(str(error.user_message or error).split())[:150]}")
    finally:
        await close_stripe_client(client)
    mode = "test" if settings.stripe_secret_key.startswith(("sk_test_", "rk_test_")) else "live"
    return Outcome("stripe", True, f"the {mode} key works (events readable)")


async def check_webhook(settings: Settings) -> Outcome:
    """The Stripe webhook endpoint for this service's URL, compared as `ticketing stripe webhook show` does."""
    client = create_stripe_client(settings)
    if client is None:
        return Outcome("stripe webhook", True, "dev mode: the test payment page signs its own events")
    try:
        endpoints = await endpoints_for(client, settings)
    except stripe.PermissionError:
        return Outcome("stripe webhook", False, "the key may not read webhook endpoints: give it read access to "
                                                "Webhook Endpoints, or check them with a secret key")
    except stripe.StripeError as error:
        return Outcome("stripe webhook", False, f"Stripe answered {error.http_status or 'nothing'}: "
                                                f"{' '.join(str(error.user_message or error).split())[:150]}")
    finally:
        await close_stripe_client(client)
    if not endpoints:
        return Outcome("stripe webhook", False, f"no endpoint for {endpoint_url(settings)}: "
                                                f"run `ticketing stripe webhook create`")
    found = [compare(endpoint, settings) for endpoint in endpoints]
    fitting = [c for c in found if c.ok]
    if not fitting:
        return Outcome("stripe webhook", False, f"{found[0].endpoint_id} {'; '.join(found[0].problems)}")
    more = f" ({len(endpoints)} endpoints post to it: events arrive once per endpoint)" if len(endpoints) > 1 else ""
    return Outcome("stripe webhook", True, f"{fitting[0].endpoint_id} posts the handled events to "
                                           f"{endpoint_url(settings)}, enabled{more}")


async def check_jitsi(settings: Settings, http: aiohttp.ClientSession) -> Outcome:
    try:
        async with http.get(settings.jitsi_url, allow_redirects=True) as response:
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome("jitsi", False, f"{settings.jitsi_url} does not answer ({error or type(error).__name__}); "
                                       f"check TICKETING_JITSI_URL")
    if status >= 500:
        return Outcome("jitsi", False, f"{settings.jitsi_url} answers {status}: is Jitsi's web container up?")
    return Outcome("jitsi", True, f"{settings.jitsi_url} answers {status}")


async def check_key_server(settings: Settings, http: aiohttp.ClientSession) -> Outcome | None:
    if settings.jitsi_algorithm != "RS256" or settings.jitsi_private_key_file is None or settings.jitsi_key_id is None:
        return None
    url = f"{key_server_url(settings)}/{kid_digest(settings.jitsi_key_id)}.pem"
    expected = public_pem(load_private_key(settings.jitsi_private_key_file, "JITSI_PRIVATE_KEY_FILE").public_key())
    try:
        async with http.get(url) as response:
            status, body = response.status, await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        return Outcome("key server", False, f"{url} does not answer ({error or type(error).__name__}): is the service "
                                            f"running and TICKETING_BASE_URL its public URL?")
    if status != 200:
        return Outcome("key server", False, f"{url} answers {status}: Prosody could not verify tokens; "
                                            f"is TICKETING_BASE_URL this service's public URL?")
    if body.strip() != expected.strip():
        return Outcome("key server", False, f"{url} serves another key than TICKETING_JITSI_PRIVATE_KEY_FILE's: "
                                            f"restart the service with the current key")
    return Outcome("key server", True, f"{url} serves the current key ({settings.jitsi_key_id})")


def check_proxies(settings: Settings) -> Outcome:
    proxies = ", ".join(str(network) for network in settings.trusted_proxies)
    return Outcome("trusted proxies", True, proxies or "none: client addresses are the peers' own")


async def run_checks(settings: Settings) -> list[Outcome]:
    """Every check, in the order an operator fixes things."""
    outcomes = [check_settings(settings), await check_database(settings)]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT)) as http:
        found = await asyncio.gather(check_smtp(settings), check_stripe(settings), check_webhook(settings),
                                     check_jitsi(settings, http), check_key_server(settings, http))
    outcomes += [outcome for outcome in found if outcome is not None]
    outcomes.append(check_proxies(settings))
    return outcomes
