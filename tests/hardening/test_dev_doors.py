"""Dev mode's doors (the mail sink at /dev/mail, the test-payment page) exist only without a
Stripe key; production refuses to start without a way to send mail."""

from __future__ import annotations

import pytest

from tests import factories
from tests.conftest import JITSI_APP_SECRET, SESSION_KEY, STRIPE_SECRET_KEY, STRIPE_WEBHOOK_SECRET
from tests.mail.test_delivery import buy
from ticketing.preflight import check_settings


async def test_with_a_stripe_key_and_no_smtp_nothing_of_dev_mode_is_served(start_client, stripe_settings,
                                                                         sessionmaker, make_worker, var_dir):
    assert stripe_settings.mail_sink and not stripe_settings.dev_mail
    client = await start_client(stripe_settings)
    webinar = await factories.webinar(sessionmaker)
    await buy(client, webinar, email="buyer@example.com")
    await make_worker(stripe_settings).run_until_idle()
    [written] = list((var_dir / "mail").glob("*.eml"))
    assert (await client.get("/dev/mail")).status == 404
    assert (await client.get(f"/dev/mail/{written.name}")).status == 404
    assert (await client.get("/dev/checkout/cs_test_x")).status == 404
    home = await (await client.get("/")).text()
    assert "/dev/mail" not in home and "Development mode" not in home


async def test_mail_to_disk_keeps_files_and_still_serves_none(start_client, make_settings, stripe_standin,
                                                              sessionmaker, make_worker, var_dir):
    settings = make_settings(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                             stripe_api_base=stripe_standin.url, jitsi_app_secret=JITSI_APP_SECRET,
                             session_key=SESSION_KEY, mail_to_disk="true")
    assert settings.mail_problem() is None and not settings.dev_mail
    client = await start_client(settings)
    webinar = await factories.webinar(sessionmaker)
    await buy(client, webinar, email="staging@example.com")
    await make_worker(settings).run_until_idle()
    [written] = list((var_dir / "mail").glob("*.eml"))
    assert b"staging@example.com" in written.read_bytes()
    assert (await client.get("/dev/mail")).status == 404
    assert (await client.get(f"/dev/mail/{written.name}")).status == 404


async def test_dev_mode_still_serves_its_mail(client, settings):
    assert settings.dev_mail
    assert (await client.get("/dev/mail")).status == 200
    assert "/dev/mail" in await (await client.get("/")).text()


def _production_env(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**cli_env, "TICKETING_STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "TICKETING_STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET, "TICKETING_JITSI_APP_SECRET": JITSI_APP_SECRET,
            "TICKETING_SESSION_KEY": SESSION_KEY, **extra}


@pytest.mark.parametrize("command", [["serve", "--no-worker"], ["worker"]])
async def test_serve_and_worker_refuse_a_stripe_key_without_smtp_in_one_line(cli, cli_env, command):
    result = await cli(*command, env=_production_env(cli_env))
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "TICKETING_SMTP_URL" in line and "TICKETING_MAIL_TO_DISK" in line
    assert "Traceback" not in result.stderr


def test_check_agrees_with_serve(make_settings):
    production = dict(stripe_secret_key=STRIPE_SECRET_KEY, stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                      jitsi_app_secret=JITSI_APP_SECRET, session_key=SESSION_KEY,
                      base_url="https://tickets.example.com")
    refused = check_settings(make_settings(**production))
    assert not refused.ok and "TICKETING_SMTP_URL" in refused.line
    staging = check_settings(make_settings(**production, mail_to_disk="true"))
    assert staging.ok and "TICKETING_MAIL_TO_DISK" in staging.line
    sending = check_settings(make_settings(**production, smtp_url="smtp://mail.example.com:587"))
    assert sending.ok and "SMTP" in sending.line


def test_mail_to_disk_must_be_a_boolean(make_settings):
    from ticketing.settings import SettingsError

    with pytest.raises(SettingsError, match="TICKETING_MAIL_TO_DISK"):
        make_settings(mail_to_disk="maybe")
