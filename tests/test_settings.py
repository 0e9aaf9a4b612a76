"""Settings.from_env: defaults, one clear line per bad value, the .env file, dev secrets kept."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ticketing.settings import Settings, SettingsError

GOOD_SECRET = "s" * 32


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The defaults are relative to the working directory (./var, ./.env): use a fresh one."""
    monkeypatch.chdir(tmp_path)


def from_env(**values: str) -> Settings:
    return Settings.from_env({f"TICKETING_{k.upper()}": v for k, v in values.items()}, dotenv=None)


@pytest.mark.parametrize(("url", "subject"), [
    ("https://meet.example.com", "meet.example.com"),
    ("https://meet.example.com/", "meet.example.com"),
    ("https://meet.example.com/Acme", "acme"),
    ("https://meet.example.com/acme/", "acme"),
])
def test_the_subject_defaults_to_the_tenant_when_the_url_has_one(tmp_path, url, subject):
    settings = Settings.from_env({"TICKETING_JITSI_URL": url, "TICKETING_VAR_DIR": str(tmp_path)}, dotenv=None)
    assert settings.jitsi_subject == subject


def test_defaults(tmp_path):
    settings = from_env()
    assert settings.database_url == "sqlite+aiosqlite:///./var/ticketing.db"
    assert (settings.host, settings.port, settings.base_url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080")
    assert settings.stripe_secret_key is None and settings.dev_checkout
    assert settings.stripe_api_base is None and settings.stripe_livemode is False
    assert settings.checkout_expires_minutes == 30
    assert (settings.jitsi_url, settings.jitsi_app_id, settings.jitsi_audience, settings.jitsi_subject) == (
        "https://meet.jit.si", "ticketing", "jitsi", "meet.jit.si")
    assert settings.jitsi_algorithm == "HS256" and settings.jitsi_private_key_file is None
    assert (settings.join_early_minutes, settings.join_grace_minutes) == (15, 30)
    assert settings.smtp_url is None and settings.dev_mail
    assert settings.mail_from == "Webinars <no-reply@localhost>"
    assert settings.sweep_seconds == 30
    assert (settings.log_level, settings.log_format) == ("INFO", "text")
    assert settings.var_dir == Path("var") and settings.mail_dir == Path("var/mail")


def test_values_are_read_and_derived():
    settings = from_env(
        database_url="postgresql+asyncpg://u:p@db.example/tickets", host="0.0.0.0", port="9000",
        base_url="https://tickets.example.com/", stripe_secret_key="sk_live_abc", stripe_webhook_secret="whsec_a",
        jitsi_app_secret=GOOD_SECRET, jitsi_url="https://Meet.Example.com/", checkout_expires_minutes="60",
        jitsi_features="recording=false,lobby_bypass", sweep_seconds="0.5", log_level="debug", log_format="json",
        smtp_url="smtps://user:pw@mail.example.com:465", join_early_minutes="0", session_key=GOOD_SECRET,
    )
    assert settings.database_url == "postgresql+asyncpg://u:p@db.example/tickets"
    assert (settings.host, settings.port) == ("0.0.0.0", 9000)
    assert settings.base_url == "https://tickets.example.com"
    assert settings.stripe_livemode and not settings.dev_checkout
    assert settings.stripe_webhook_secrets == ("whsec_a",)
    assert settings.jitsi_url == "https://Meet.Example.com" and settings.jitsi_subject == "meet.example.com"
    assert settings.jitsi_features == {"recording": False, "lobby_bypass": True}
    assert settings.checkout_expires_minutes == 60 and settings.sweep_seconds == 0.5
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert not settings.dev_mail and settings.join_early_minutes == 0


def test_base_url_follows_host_and_port():
    assert from_env(host="localhost", port="8123").base_url == "http://localhost:8123"


def test_blank_values_count_as_unset():
    assert from_env(port="  ", stripe_secret_key="").port == 8080


def test_other_variables_are_ignored():
    settings = Settings.from_env({"PORT": "1", "TICKETING": "x", "TICKETING_UNKNOWN": "y"}, dotenv=None)
    assert settings.port == 8080


BAD = [
    ({"database_url": "mysql://db/x"}, "TICKETING_DATABASE_URL"),
    ({"database_url": "sqlite:///plain.db"}, "TICKETING_DATABASE_URL"),
    ({"port": "eighty"}, "TICKETING_PORT"),
    ({"port": "0"}, "TICKETING_PORT"),
    ({"port": "65536"}, "TICKETING_PORT"),
    ({"base_url": "ftp://example.com"}, "TICKETING_BASE_URL"),
    ({"base_url": "example.com"}, "TICKETING_BASE_URL"),
    ({"stripe_secret_key": "pk_test_123", "stripe_webhook_secret": "whsec_a", "jitsi_app_secret": GOOD_SECRET},
     "TICKETING_STRIPE_SECRET_KEY"),
    ({"stripe_secret_key": "sk_test_123", "jitsi_app_secret": GOOD_SECRET}, "TICKETING_STRIPE_WEBHOOK_SECRET"),
    ({"stripe_webhook_secret": "secret"}, "TICKETING_STRIPE_WEBHOOK_SECRET"),
    ({"stripe_webhook_secret": "whsec_a,nope"}, "TICKETING_STRIPE_WEBHOOK_SECRET"),
    ({"stripe_webhook_secret": ", ,"}, "TICKETING_STRIPE_WEBHOOK_SECRET"),
    ({"stripe_secret_key": "sk_test_123", "stripe_webhook_secret": "whsec_a"}, "TICKETING_JITSI_APP_SECRET"),
    ({"stripe_api_base": "localhost:12111"}, "TICKETING_STRIPE_API_BASE"),
    ({"checkout_expires_minutes": "10"}, "TICKETING_CHECKOUT_EXPIRES_MINUTES"),
    ({"checkout_expires_minutes": "2000"}, "TICKETING_CHECKOUT_EXPIRES_MINUTES"),
    ({"jitsi_url": "meet.jit.si"}, "TICKETING_JITSI_URL"),
    ({"jitsi_app_secret": "too short"}, "TICKETING_JITSI_APP_SECRET"),
    ({"jitsi_private_key_file": "/nonexistent/key.pem", "jitsi_key_id": "k1"}, "TICKETING_JITSI_PRIVATE_KEY_FILE"),
    ({"jitsi_next_key_id": "k2"}, "TICKETING_JITSI_NEXT_KEY_ID"),
    ({"jitsi_features": "teleport=true"}, "TICKETING_JITSI_FEATURES"),
    ({"jitsi_host_features": "recording=maybe"}, "TICKETING_JITSI_HOST_FEATURES"),
    ({"join_early_minutes": "-5"}, "TICKETING_JOIN_EARLY_MINUTES"),
    ({"join_grace_minutes": "soon"}, "TICKETING_JOIN_GRACE_MINUTES"),
    ({"smtp_url": "http://mail.example.com"}, "TICKETING_SMTP_URL"),
    ({"smtp_url": "smtp://"}, "TICKETING_SMTP_URL"),
    ({"mail_from": "nobody"}, "TICKETING_MAIL_FROM"),
    ({"sweep_seconds": "often"}, "TICKETING_SWEEP_SECONDS"),
    ({"sweep_seconds": "0"}, "TICKETING_SWEEP_SECONDS"),
    ({"log_level": "loud"}, "TICKETING_LOG_LEVEL"),
    ({"log_format": "xml"}, "TICKETING_LOG_FORMAT"),
]


@pytest.mark.parametrize(("values", "variable"), BAD, ids=[f"{v}-{i}" for i, (_, v) in enumerate(BAD)])
def test_a_bad_value_is_one_line_naming_the_variable(values, variable):
    with pytest.raises(SettingsError) as error:
        from_env(**values)
    message = str(error.value)
    assert message.startswith(f"{variable}: "), message
    assert "\n" not in message and len(message) < 300
    assert len(message) > len(variable) + 10  # says what is wrong, not only where


def test_private_key_needs_a_key_id(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    with pytest.raises(SettingsError, match="^TICKETING_JITSI_KEY_ID: "):
        from_env(jitsi_private_key_file=str(key))


def test_dotenv_is_read_and_the_environment_wins(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text('TICKETING_PORT=9100\nTICKETING_MAIL_FROM="Talks <talks@example.com>"\n'
                      "# a comment\nOTHER=ignored\nTICKETING_LOG_LEVEL=WARNING\n")
    settings = Settings.from_env({"TICKETING_LOG_LEVEL": "ERROR"}, dotenv=dotenv)
    assert settings.port == 9100
    assert settings.mail_from == "Talks <talks@example.com>"
    assert settings.log_level == "ERROR"


def test_dotenv_in_the_working_directory_is_the_default(tmp_path):
    (tmp_path / ".env").write_text("TICKETING_PORT=9200\n")
    assert Settings.from_env({}).port == 9200
    assert Settings.from_env({}, dotenv=None).port == 8080


def test_a_bad_value_in_dotenv_is_reported_like_any_other(tmp_path):
    (tmp_path / ".env").write_text("TICKETING_PORT=lots\n")
    with pytest.raises(SettingsError, match="^TICKETING_PORT: "):
        Settings.from_env({})


def test_dev_secrets_are_generated_once_and_kept(tmp_path):
    var = tmp_path / "state"
    first = from_env(var_dir=str(var))
    second = from_env(var_dir=str(var))
    [webhook_secret] = first.stripe_webhook_secrets
    assert webhook_secret.startswith("whsec_") and len(webhook_secret) > 30
    assert len(first.jitsi_app_secret.encode()) >= 32
    assert second.stripe_webhook_secrets == first.stripe_webhook_secrets
    assert second.jitsi_app_secret == first.jitsi_app_secret
    for name in ("stripe_webhook_secret", "jitsi_app_secret"):
        path = var / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (var / "stripe_webhook_secret").read_text().strip() == webhook_secret

    elsewhere = from_env(var_dir=str(tmp_path / "other"))
    assert elsewhere.stripe_webhook_secrets != first.stripe_webhook_secrets
    assert elsewhere.jitsi_app_secret != first.jitsi_app_secret


def test_configured_secrets_are_used_and_nothing_is_generated(tmp_path):
    var = tmp_path / "state"
    settings = from_env(var_dir=str(var), stripe_secret_key="sk_test_1", stripe_webhook_secret="whsec_x, whsec_y",
                        jitsi_app_secret=GOOD_SECRET, session_key=GOOD_SECRET)
    assert settings.stripe_webhook_secrets == ("whsec_x", "whsec_y")
    assert settings.jitsi_app_secret == GOOD_SECRET
    assert not var.exists()


def test_settings_are_frozen():
    settings = from_env()
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]
