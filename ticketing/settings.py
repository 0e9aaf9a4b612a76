"""The one place that reads the environment: every setting, its default and its check."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

PREFIX = "TICKETING_"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/ticketing.db"
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
JITSI_FEATURES = ("recording", "livestreaming", "transcription", "outbound-call", "lobby_bypass")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything configurable, already checked. Build it with `Settings.from_env()`."""

    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = "http://127.0.0.1:8080"
    var_dir: Path = Path("var")

    stripe_secret_key: str | None = None
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_api_base: str | None = None
    checkout_expires_minutes: int = 30

    jitsi_url: str = "https://meet.jit.si"
    jitsi_app_id: str = "ticketing"
    jitsi_app_secret: str | None = None
    jitsi_private_key_file: Path | None = None
    jitsi_key_id: str | None = None
    jitsi_next_public_key_file: Path | None = None
    jitsi_next_key_id: str | None = None
    jitsi_audience: str = "jitsi"
    jitsi_subject: str = "meet.jit.si"
    jitsi_features: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    jitsi_host_features: Mapping[str, bool] = dataclasses.field(default_factory=dict)
    jitsi_end_meeting_url: str | None = None
    # Prosody's end-meeting endpoint trusts its own key pair, not the one login tokens use.
    jitsi_system_key_file: Path | None = None
    jitsi_system_key_id: str | None = None
    jitsi_muc_domain: str = "conference.meet.jit.si"
    join_early_minutes: int = 15
    join_grace_minutes: int = 30
    # Requests per minute to /j/… from one join code, and failed look-ups (unknown or malformed
    # codes) per minute from one client address; 0 = no limit.
    join_rate_per_code: int = 20
    join_rate_per_address: int = 60

    smtp_url: str | None = None
    # Staging without an SMTP server: mail kept in var_dir/mail even with a Stripe key (never served over HTTP).
    mail_to_disk: bool = False
    mail_from: str = "Webinars <no-reply@localhost>"
    sweep_seconds: float = 30.0

    log_level: str = "INFO"
    log_format: str = "text"
    # Free registrations per minute from one client address (bursts up to that many); 0 = no limit.
    register_rate_per_address: int = 10

    # Encrypts the organizer console's session cookie (at least 32 bytes; a Fernet key is derived from it).
    session_key: str | None = None

    # Reverse proxies whose X-Forwarded-For / Forwarded / X-Forwarded-Proto are believed.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Failed API-key attempts per minute from one client address; 0 = no limit.
    api_key_rate_per_address: int = 30

    # Seat reassignments on an order page: per seat, and per order on top of its seat count.
    reassign_per_seat_hour: int = 3
    reassign_per_seat_day: int = 6
    reassign_per_order_hour: int = 10
    reassign_per_order_day: int = 20

    # Bearer secret Prosody's event_sync_component sends to /jitsi/events/…; None = those routes answer 404.
    jitsi_events_secret: str | None = None
    # jitsi-meet's mod_muc_kick_participant endpoint, called with the system token when a ticket moves device.
    jitsi_kick_url: str | None = None

    @property
    def dev_checkout(self) -> bool:
        """No Stripe key: checkout goes to the local test-payment page."""
        return self.stripe_secret_key is None

    @property
    def mail_sink(self) -> bool:
        """No SMTP URL: mail is written to files under `var_dir/mail` instead of being sent."""
        return self.smtp_url is None

    @property
    def dev_mail(self) -> bool:
        """Dev mode's mail sink, listed at /dev/mail: no SMTP URL and no Stripe key. With a Stripe
        key the files would hand anyone every sign-in and join link, so they are never served."""
        return self.mail_sink and self.dev_checkout

    def mail_problem(self) -> str | None:
        """Why `serve` and `worker` must not start, or None: a Stripe key (production) with
        neither an SMTP server nor an explicit choice to keep mail on disk."""
        if self.stripe_secret_key is not None and self.smtp_url is None and not self.mail_to_disk:
            return (f"{PREFIX}SMTP_URL: required with a Stripe key (or set {PREFIX}MAIL_TO_DISK=true "
                    f"to keep mail as files in {self.mail_dir}, never sent)")
        return None

    @property
    def stripe_livemode(self) -> bool:
        """Which Stripe mode events must be in to be acted on (test when no key)."""
        return bool(self.stripe_secret_key) and "_live_" in self.stripe_secret_key

    @property
    def jitsi_algorithm(self) -> str:
        return "RS256" if self.jitsi_private_key_file else "HS256"

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")) -> Settings:
        """Build settings from `environ` (default `os.environ`) over an optional `.env` file.

        Secrets that dev mode needs but nobody set (the webhook signing secret, the Jitsi
        HS256 secret) are generated once and kept under the var directory.
        """
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        env = {k: v.strip() for k, v in values.items() if k.startswith(PREFIX) and v.strip()}
        return _Reader(env).build(cls)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def raw(self, name: str) -> str | None:
        return self.env.get(PREFIX + name)

    def fail(self, name: str, problem: str) -> SettingsError:
        return SettingsError(f"{PREFIX}{name}: {problem}")

    def string(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.fail(name, f"must be a whole number, got {value!r}") from None
        if not low <= number <= high:
            raise self.fail(name, f"must be between {low} and {high}, got {number}")
        return number

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise self.fail(name, f"must be a number, got {value!r}") from None
        if not low <= number <= high:
            raise self.fail(name, f"must be between {low:g} and {high:g}, got {value}")
        return number

    def url(self, name: str, default: str | None, schemes: tuple[str, ...]) -> str | None:
        value = self.string(name, default)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in schemes or not parts.hostname:
            raise self.fail(name, f"must be a {' or '.join(s + '://' for s in schemes)} URL with a host, got {value!r}")
        return value.rstrip("/")

    def file(self, name: str) -> Path | None:
        value = self.raw(name)
        if value is None:
            return None
        path = Path(value)
        if not path.is_file():
            raise self.fail(name, f"no readable file at {value!r}")
        return path

    def flag(self, name: str) -> bool:
        value = self.raw(name)
        if value is None or value.lower() in ("0", "false", "no", "off"):
            return False
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        raise self.fail(name, f"must be true or false, got {value!r}")

    def features(self, name: str) -> dict[str, bool]:
        """`recording=true,lobby_bypass=false` → {"recording": True, "lobby_bypass": False}."""
        value = self.raw(name)
        if value is None:
            return {}
        result: dict[str, bool] = {}
        for item in value.split(","):
            key, sep, flag = item.strip().partition("=")
            if key not in JITSI_FEATURES:
                raise self.fail(name, f"unknown feature {key!r}; known: {', '.join(JITSI_FEATURES)}")
            if sep and flag.lower() not in ("true", "false"):
                raise self.fail(name, f"feature {key!r} must be =true or =false, got {flag!r}")
            result[key] = not sep or flag.lower() == "true"
        return result

    def networks(self, name: str) -> tuple[IPNetwork, ...]:
        """`10.0.0.1, 10.1.0.0/16, ::1` → the addresses and networks (an address is a /32 or /128)."""
        value = self.raw(name)
        if value is None:
            return ()
        result = []
        for item in value.split(","):
            item = item.strip()
            try:
                result.append(ipaddress.ip_network(item))
            except ValueError as error:
                raise self.fail(name, f"{item!r} is not an IP address or network ({error}); "
                                      "give addresses or CIDRs separated by commas") from None
        return tuple(result)

    def build(self, cls: type[Settings]) -> Settings:
        database_url = self.string("DATABASE_URL", DEFAULT_DATABASE_URL)
        if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise self.fail("DATABASE_URL", "must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        var_dir = Path(self.string("VAR_DIR", "var"))

        stripe_key = self.string("STRIPE_SECRET_KEY")
        if stripe_key is not None and not stripe_key.startswith(("sk_", "rk_")):
            raise self.fail("STRIPE_SECRET_KEY", "must start with sk_ or rk_")
        webhook_raw = self.string("STRIPE_WEBHOOK_SECRET")
        if webhook_raw is not None:
            webhook_secrets = tuple(s.strip() for s in webhook_raw.split(",") if s.strip())
            bad = [s for s in webhook_secrets if not s.startswith("whsec_")]
            if bad or not webhook_secrets:
                raise self.fail("STRIPE_WEBHOOK_SECRET", "each comma-separated secret must start with whsec_")
        elif stripe_key is not None:
            raise self.fail("STRIPE_WEBHOOK_SECRET", "required when TICKETING_STRIPE_SECRET_KEY is set")
        else:
            webhook_secrets = (_kept_secret(var_dir / "stripe_webhook_secret", "whsec_"),)

        jitsi_url = self.url("JITSI_URL", "https://meet.jit.si", ("https", "http"))
        private_key = self.file("JITSI_PRIVATE_KEY_FILE")
        key_id = self.string("JITSI_KEY_ID")
        app_secret = self.string("JITSI_APP_SECRET")
        if private_key is not None:
            if not key_id:
                raise self.fail("JITSI_KEY_ID", "required with TICKETING_JITSI_PRIVATE_KEY_FILE")
        elif app_secret is None:
            if stripe_key is not None:
                raise self.fail("JITSI_APP_SECRET", "required (at least 32 bytes) unless TICKETING_JITSI_PRIVATE_KEY_FILE is set")
            app_secret = _kept_secret(var_dir / "jitsi_app_secret", "")
        if app_secret is not None and len(app_secret.encode()) < 32:
            raise self.fail("JITSI_APP_SECRET", f"must be at least 32 bytes, got {len(app_secret.encode())}")
        next_public = self.file("JITSI_NEXT_PUBLIC_KEY_FILE")
        next_kid = self.string("JITSI_NEXT_KEY_ID")
        if (next_public is None) != (next_kid is None):
            raise self.fail("JITSI_NEXT_KEY_ID", "set together with TICKETING_JITSI_NEXT_PUBLIC_KEY_FILE")
        end_meeting_url = self.url("JITSI_END_MEETING_URL", None, ("https", "http"))
        kick_url = self.url("JITSI_KICK_URL", None, ("https", "http"))
        system_key = self.file("JITSI_SYSTEM_KEY_FILE")
        system_kid = self.string("JITSI_SYSTEM_KEY_ID")
        if end_meeting_url is not None or kick_url is not None:
            needed_by = "TICKETING_JITSI_END_MEETING_URL" if end_meeting_url is not None else "TICKETING_JITSI_KICK_URL"
            if system_key is None:
                raise self.fail("JITSI_SYSTEM_KEY_FILE", f"required with {needed_by}")
            if system_kid is None:
                raise self.fail("JITSI_SYSTEM_KEY_ID", f"required with {needed_by}")
        elif system_key is not None or system_kid is not None:
            raise self.fail("JITSI_END_MEETING_URL", "required with TICKETING_JITSI_SYSTEM_KEY_FILE and _KEY_ID")
        if system_kid is not None and system_kid in (key_id, next_kid):
            # Prosody fetches login keys by kid: a shared kid would make the system token a login token.
            raise self.fail("JITSI_SYSTEM_KEY_ID", "must differ from TICKETING_JITSI_KEY_ID and TICKETING_JITSI_NEXT_KEY_ID")
        subject = self.string("JITSI_SUBJECT", _default_subject(jitsi_url)).lower()
        muc_domain = self.string("JITSI_MUC_DOMAIN", _default_muc_domain(jitsi_url, subject)).lower()
        if not _DOMAIN.fullmatch(muc_domain):
            raise self.fail("JITSI_MUC_DOMAIN", f"must be a domain name like conference.meet.example.com, got {muc_domain!r}")

        mail_from = self.string("MAIL_FROM", "Webinars <no-reply@localhost>")
        if "@" not in parseaddr(mail_from)[1]:
            raise self.fail("MAIL_FROM", f"must be an address like 'Webinars <no-reply@example.com>', got {mail_from!r}")

        log_format = self.string("LOG_FORMAT", "text")
        if log_format not in ("text", "json"):
            raise self.fail("LOG_FORMAT", f"must be text or json, got {log_format!r}")
        log_level = self.string("LOG_LEVEL", "INFO").upper()
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise self.fail("LOG_LEVEL", f"must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")

        session_key = self.string("SESSION_KEY")
        if session_key is None:
            # Kept in the var dir in every mode, so a deployment that never heard of the console
            # still starts; processes on several machines must share one set explicitly.
            session_key = _kept_secret(var_dir / "session_key", "")
        if len(session_key.encode()) < 32:
            raise self.fail("SESSION_KEY", f"must be at least 32 bytes, got {len(session_key.encode())}")
        events_secret = self.string("JITSI_EVENTS_SECRET")
        if events_secret is None and stripe_key is None:
            events_secret = _kept_secret(var_dir / "jitsi_events_secret", "")

        port = self.integer("PORT", 8080, 1, 65535)
        host = self.string("HOST", "127.0.0.1")
        return cls(
            database_url=database_url,
            host=host,
            port=port,
            base_url=self.url("BASE_URL", f"http://{host}:{port}", ("http", "https")),
            var_dir=var_dir,
            stripe_secret_key=stripe_key,
            stripe_webhook_secrets=webhook_secrets,
            stripe_api_base=self.url("STRIPE_API_BASE", None, ("http", "https")),
            checkout_expires_minutes=self.integer("CHECKOUT_EXPIRES_MINUTES", 30, 30, 24 * 60),
            jitsi_url=jitsi_url,
            jitsi_app_id=self.string("JITSI_APP_ID", "ticketing"),
            jitsi_app_secret=None if private_key is not None else app_secret,
            jitsi_private_key_file=private_key,
            jitsi_key_id=key_id,
            jitsi_next_public_key_file=next_public,
            jitsi_next_key_id=next_kid,
            jitsi_audience=self.string("JITSI_AUDIENCE", "jitsi"),
            jitsi_subject=subject,
            jitsi_features=self.features("JITSI_FEATURES"),
            jitsi_host_features=self.features("JITSI_HOST_FEATURES"),
            jitsi_end_meeting_url=end_meeting_url,
            jitsi_system_key_file=system_key,
            jitsi_system_key_id=system_kid,
            jitsi_muc_domain=muc_domain,
            join_early_minutes=self.integer("JOIN_EARLY_MINUTES", 15, 0, 24 * 60),
            join_grace_minutes=self.integer("JOIN_GRACE_MINUTES", 30, 0, 24 * 60),
            join_rate_per_code=self.integer("JOIN_RATE_PER_CODE", 20, 0, 100_000),
            join_rate_per_address=self.integer("JOIN_RATE_PER_ADDRESS", 60, 0, 1_000_000),
            smtp_url=self.url("SMTP_URL", None, ("smtp", "smtps")),
            mail_to_disk=self.flag("MAIL_TO_DISK"),
            mail_from=mail_from,
            sweep_seconds=self.number("SWEEP_SECONDS", 30.0, 0.05, 86400),
            log_level=log_level,
            log_format=log_format,
            register_rate_per_address=self.integer("REGISTER_RATE_PER_ADDRESS", 10, 0, 100_000),
            session_key=session_key,
            trusted_proxies=self.networks("TRUSTED_PROXIES"),
            api_key_rate_per_address=self.integer("API_KEY_RATE_PER_ADDRESS", 30, 0, 1_000_000),
            jitsi_events_secret=events_secret,
            reassign_per_seat_hour=self.integer("REASSIGN_PER_SEAT_HOUR", 3, 0, 1000),
            reassign_per_seat_day=self.integer("REASSIGN_PER_SEAT_DAY", 6, 0, 10_000),
            reassign_per_order_hour=self.integer("REASSIGN_PER_ORDER_HOUR", 10, 0, 10_000),
            reassign_per_order_day=self.integer("REASSIGN_PER_ORDER_DAY", 20, 0, 100_000),
            jitsi_kick_url=kick_url,
        )


def _default_subject(jitsi_url: str) -> str:
    """The tenant when rooms live under a tenant path (https://host/tenant), else the host."""
    parts = urlsplit(jitsi_url)
    tenant = parts.path.strip("/").split("/")[0]
    return tenant or parts.hostname or ""


def _default_muc_domain(jitsi_url: str, subject: str) -> str:
    """Where Jitsi's rooms live: conference.{domain}, or conference.{tenant}.{domain} under a tenant."""
    parts = urlsplit(jitsi_url)
    tenant = parts.path.strip("/").split("/")[0].lower()
    if tenant:
        return f"conference.{tenant}.{(parts.hostname or '').lower()}"
    return f"conference.{subject}"


def _kept_secret(path: Path, prefix: str) -> str:
    """A random secret generated on first use and kept in `path` for the next start."""
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = prefix + secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return value
