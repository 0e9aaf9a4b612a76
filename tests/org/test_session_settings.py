"""TICKETING_SESSION_KEY: generated and kept in the var dir when unset (a Stripe deployment too), 32 bytes at least."""

from __future__ import annotations

import stat

import pytest

from ticketing.settings import Settings, SettingsError

STRIPE = {"TICKETING_STRIPE_SECRET_KEY": "sk_test_1", "TICKETING_STRIPE_WEBHOOK_SECRET": "whsec_x",
          "TICKETING_JITSI_APP_SECRET": "j" * 32}


def test_dev_mode_generates_the_key_once_and_keeps_it(tmp_path):
    env = {"TICKETING_VAR_DIR": str(tmp_path / "var")}
    first = Settings.from_env(env, dotenv=None)
    kept = tmp_path / "var" / "session_key"
    assert kept.read_text().strip() == first.session_key and len(first.session_key) >= 32
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert Settings.from_env(env, dotenv=None).session_key == first.session_key


def test_a_stripe_deployment_without_a_session_key_still_starts_and_keeps_one(tmp_path):
    kept = Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path), **STRIPE}, dotenv=None)
    assert (tmp_path / "session_key").read_text().strip() == kept.session_key and len(kept.session_key) >= 32
    (tmp_path / "session_key").unlink()
    settings = Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path), "TICKETING_SESSION_KEY": "k" * 32, **STRIPE},
                                 dotenv=None)
    assert settings.session_key == "k" * 32 and not (tmp_path / "session_key").exists()


def test_a_short_session_key_is_refused(tmp_path):
    with pytest.raises(SettingsError, match="TICKETING_SESSION_KEY: must be at least 32 bytes, got 5"):
        Settings.from_env({"TICKETING_VAR_DIR": str(tmp_path), "TICKETING_SESSION_KEY": "short"}, dotenv=None)
