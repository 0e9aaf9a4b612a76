"""`ticketing token` and `ticketing jitsi-config`, and tokens checked with only what jitsi-config printed."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from tests import factories
from tests.access.conftest import SECRET, add_ticket, move_webinar
from tests.access.test_jitsi_config import sections
from ticketing.access.tokens import Tokens
from ticketing.cli import main
from ticketing.db import utcnow
from ticketing.settings import Settings


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Run commands from an empty directory (no .env) with the given TICKETING_* values."""
    monkeypatch.chdir(tmp_path)

    def set_env(**values: str) -> None:
        monkeypatch.setenv("TICKETING_VAR_DIR", str(tmp_path / "var"))
        for name, value in values.items():
            monkeypatch.setenv(f"TICKETING_{name.upper()}", value)

    return set_env


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def test_token_command_mints_a_verifiable_token(env, capsys):
    env(jitsi_app_secret=SECRET)
    settings = Settings.from_env(dotenv=None)
    code, out, _ = run(capsys, "token", "--room", "Support-Room", "--name", "Sam", "--moderator", "--ttl", "1h30m")
    assert code == 0
    token = out.strip()
    claims = Tokens.from_settings(settings).verify(token)
    assert claims["room"] == "support-room"
    assert claims["context"]["user"]["name"] == "Sam" and claims["context"]["user"]["moderator"] is True
    assert claims["context"]["user"]["affiliation"] == "owner"
    assert claims["exp"] - claims["iat"] == 90 * 60
    code, out, _ = run(capsys, "token", "--room", "lobby", "--name", "Al", "--url")
    assert code == 0 and out.startswith("https://meet.jit.si/lobby?jwt=")
    attendee = Tokens.from_settings(settings).verify(out.strip().partition("?jwt=")[2])
    assert attendee["context"]["user"]["moderator"] is False and attendee["exp"] - attendee["iat"] == 2 * 3600


@pytest.mark.parametrize(("argv", "message"), [
    (["token", "--room", "bad room", "--name", "x"], "a room is 2 to 63"),
    (["token", "--room", "*", "--name", "x"], "a room is 2 to 63"),
    (["token", "--room", "ok", "--name", "x", "--ttl", "2 hours"], "not a duration"),
    (["token", "--room", "ok", "--name", "x", "--ttl", "0s"], "from 1s to 30d"),
    (["token", "--room", "ok", "--name", "x", "--ttl", "31d"], "from 1s to 30d"),
    (["token", "--room", "ok", "--name", "  "], "a name is"),
    (["token", "--name", "x"], "--room"),
])
def test_token_command_bad_arguments_are_one_line(env, capsys, argv, message):
    env(jitsi_app_secret=SECRET)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_bad_settings_are_one_line(env, capsys, tmp_path):
    env(jitsi_app_secret="short")
    code, _, err = run(capsys, "jitsi-config")
    assert code == 2 and err.count("\n") == 1 and "TICKETING_JITSI_APP_SECRET: must be at least 32 bytes" in err
    bad = tmp_path / "bad.pem"
    bad.write_text("nope")
    env(jitsi_app_secret=SECRET, jitsi_private_key_file=str(bad), jitsi_key_id="k1")
    code, _, err = run(capsys, "token", "--room", "ok", "--name", "x")
    assert code == 2 and err.count("\n") == 1 and "is not a PEM private key" in err


def lua_value(text: str, name: str) -> str:
    return re.search(rf'^\s*{name} = "([^"]*)"', text, re.M).group(1)


def lua_list(text: str, name: str) -> list[str]:
    return re.findall(r'"([^"]*)"', re.search(rf"^\s*{name} = \{{(.*)\}}", text, re.M).group(1))


def env_lines(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if re.match(r"[A-Z_]+=", line))


def _targets(capsys) -> tuple[str, str]:
    """What `jitsi-config` prints for Debian's Prosody, and the docker-jitsi-meet .env lines."""
    code, prosody, _ = run(capsys, "jitsi-config", "--target", "debian")
    assert code == 0
    code, docker, _ = run(capsys, "jitsi-config", "--target", "docker")
    assert code == 0
    return prosody, "\n".join(sections(docker)["jitsi.env"])


def test_jitsi_config_hs256_matches_settings(env, capsys):
    env(jitsi_app_secret=SECRET, jitsi_app_id="shop", jitsi_audience="meet", jitsi_url="https://video.example.org")
    prosody, docker = _targets(capsys)
    assert 'VirtualHost "video.example.org"' in prosody and 'authentication = "token"' in prosody
    assert lua_value(prosody, "app_id") == "shop" and lua_value(prosody, "app_secret") == SECRET
    assert lua_list(prosody, "asap_accepted_issuers") == ["shop"]
    assert lua_list(prosody, "asap_accepted_audiences") == ["meet"]
    assert "asap_key_server" not in prosody
    assert 'Component "conference.video.example.org" "muc"' in prosody
    assert '"token_verification"; "token_affiliation";' in prosody
    values = env_lines(docker)
    assert values["ENABLE_AUTH"] == "1" and values["AUTH_TYPE"] == "jwt"
    assert values["JWT_APP_ID"] == "shop" and values["JWT_APP_SECRET"] == SECRET
    assert values["JWT_ACCEPTED_ISSUERS"] == "shop" and values["JWT_ACCEPTED_AUDIENCES"] == "meet"
    assert values["JWT_TOKEN_AUTH_MODULE"] == "token_verification"
    assert "token_affiliation" in values["XMPP_MUC_MODULES"].split(",")
    assert "JWT_ASAP_KEYSERVER" not in values


async def test_tokens_decode_with_only_what_jitsi_config_printed_hs256(env, capsys, make_settings, start_client,
                                                                       sessionmaker):
    values = dict(jitsi_app_secret=SECRET, jitsi_app_id="shop", jitsi_audience="meet")
    env(**values)
    prosody, _ = _targets(capsys)
    client = await start_client(make_settings(**values))
    token = await _join_token(client, sessionmaker)
    claims = jwt.decode(token, lua_value(prosody, "app_secret").encode(), algorithms=["HS256"],
                        audience=lua_list(prosody, "asap_accepted_audiences")[0],
                        issuer=lua_list(prosody, "asap_accepted_issuers"), leeway=0)
    assert claims["iss"] == lua_value(prosody, "app_id")
    assert jwt.get_unverified_header(token)["typ"] == "JWT"


async def test_tokens_decode_with_only_what_jitsi_config_printed_rs256(env, capsys, make_settings, start_client,
                                                                       sessionmaker, rs256):
    values = dict(rs256, base_url="http://tickets.example.com")
    env(**values)
    prosody, docker = _targets(capsys)
    key_server = lua_value(prosody, "asap_key_server")
    assert key_server == "http://tickets.example.com/asap" == env_lines(docker)["JWT_ASAP_KEYSERVER"]
    assert "app_secret" not in prosody and "JWT_APP_SECRET" not in docker
    client = await start_client(make_settings(**values))
    token = await _join_token(client, sessionmaker)
    # As Prosody does: the kid from the header, hashed, appended to the key server's URL.
    kid = jwt.get_unverified_header(token)["kid"]
    path = urlsplit(key_server).path + "/" + hashlib.sha256(kid.encode()).hexdigest() + ".pem"
    response = await client.get(path)
    assert response.status == 200
    public_key = serialization.load_pem_public_key(await response.read())
    claims = jwt.decode(token, public_key, algorithms=["RS256"],
                        audience=lua_list(prosody, "asap_accepted_audiences")[0],
                        issuer=lua_list(prosody, "asap_accepted_issuers"), leeway=0)
    assert claims["iss"] == lua_value(prosody, "app_id") and claims["nbf"] <= time.time() < claims["exp"]


async def _join_token(client, sessionmaker) -> str:
    webinar = await factories.webinar(sessionmaker)
    now = utcnow()
    await move_webinar(sessionmaker, webinar, now - dt.timedelta(minutes=1), now + dt.timedelta(hours=1))
    _, code = await add_ticket(sessionmaker, webinar)
    response = await client.get(f"/j/{code}", allow_redirects=False)
    assert response.status == 302
    return response.headers["Location"].partition("?jwt=")[2]
