"""`ticketing jitsi-config --target debian|docker` through the real console script: every Lua
block it prints loads in a real Lua parser (lupa), every `.env` name is one docker-jitsi-meet
reads (tests/data/docker_jitsi_meet_variables.txt), and each configured feature gets its lines."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import lupa
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.access.conftest import SECRET

TICKETING = Path(sys.executable).with_name("ticketing")
DOCKER_VARIABLES = {
    line.strip() for line in (Path(__file__).parent.parent / "data" / "docker_jitsi_meet_variables.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}
_LUA = lupa.LuaRuntime()
_COMPILE = _LUA.eval("function(source) local chunk, err = load(source, 'pasted', 't'); return err end")


def lua_error(source: str) -> str | None:
    """None when `source` compiles as Lua (as Prosody's config loader compiles it), else Lua's message."""
    return _COMPILE(source)


def sections(out: str) -> dict[str, list[str]]:
    """The printed sections by the path in their `#### path: what` header (repeated paths joined)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("#### "):
            current = found.setdefault(line[5:].partition(": ")[0], [])
        elif current is not None:
            current.append(line)
    return found


def env_values(lines: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def _key(path: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKETING_")}
    env.update(TICKETING_VAR_DIR=str(tmp_path / "var"), TICKETING_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db",
               TICKETING_BASE_URL="https://tickets.example.com", TICKETING_JITSI_URL="https://meet.example.com")
    return env


@pytest.fixture
def everything(environ: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """RS256 logins, end meeting, kick, attendance events: every feature jitsi-config speaks of."""
    _key(tmp_path / "login.pem")
    _key(tmp_path / "system.pem")
    return {**environ, "TICKETING_JITSI_PRIVATE_KEY_FILE": str(tmp_path / "login.pem"), "TICKETING_JITSI_KEY_ID": "login-1",
            "TICKETING_JITSI_SYSTEM_KEY_FILE": str(tmp_path / "system.pem"), "TICKETING_JITSI_SYSTEM_KEY_ID": "system-1",
            "TICKETING_JITSI_END_MEETING_URL": "http://prosody:5280/end-meeting",
            "TICKETING_JITSI_KICK_URL": "http://prosody:5280/kick-participant",
            "TICKETING_JITSI_MUC_DOMAIN": "muc.meet.jitsi", "TICKETING_JITSI_EVENTS_SECRET": "e" * 40}


def jitsi_config(env: dict[str, str], *args: str, cwd: Path) -> str:
    result = subprocess.run([str(TICKETING), "jitsi-config", *args], env=env, cwd=cwd, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_lua_check_fails_on_what_prosody_would_refuse():
    assert lua_error('Component "esync.meet.jitsi" "event_sync_component"\n    include_user_info = true\n') is None
    assert lua_error('# Component "esync.meet.jitsi" "event_sync_component"\n') is not None
    assert lua_error('VirtualHost "x"\n    app_id = "unterminated\n') is not None


@pytest.mark.parametrize("target", ["debian", "docker"])
@pytest.mark.parametrize("features", ["hs256", "everything"])
def test_every_lua_block_parses_and_every_env_name_is_docker_jitsi_meets(request, tmp_path, target, features):
    env = request.getfixturevalue("environ" if features == "hs256" else "everything")
    if features == "hs256":
        env["TICKETING_JITSI_APP_SECRET"] = SECRET
    out = jitsi_config(env, "--target", target, cwd=tmp_path)
    found = sections(out)
    lua_paths = [path for path in found if path.endswith(".lua") and "mod_" not in path]
    assert lua_paths
    for path in lua_paths:
        assert lua_error("\n".join(found[path])) is None, (path, found[path])
    if target == "docker":
        names = set(env_values(found["jitsi.env"]))
        assert names <= DOCKER_VARIABLES, names - DOCKER_VARIABLES
        assert {"ENABLE_AUTH", "AUTH_TYPE", "JWT_APP_ID", "XMPP_MUC_DOMAIN"} <= names
        # GLOBAL_CONFIG carries Lua into Prosody's global section: it must parse too.
        config = env_values(found["jitsi.env"]).get("GLOBAL_CONFIG")
        if config is not None:
            assert lua_error(config) is None, config


def test_debian_with_every_feature(tmp_path, everything):
    out = jitsi_config(everything, cwd=tmp_path)
    found = sections(out)
    assert "apt-get install jitsi-meet-tokens" in "\n".join(found["packages"])
    host = "\n".join(found["/etc/prosody/conf.avail/meet.example.com.cfg.lua"])
    assert 'VirtualHost "meet.example.com"' in host
    assert 'asap_key_server = "https://tickets.example.com/asap"' in host and 'signature_algorithm = "RS256"' in host
    assert "app_secret" not in host
    assert '"muc_kick_participant"' in host and '"token_affiliation"' in host
    assert 'Component "conference.meet.example.com" "muc"' in host
    assert 'Component "esync.meet.example.com" "event_sync_component"' in host
    assert 'muc_component = "conference.meet.example.com"' in host
    top = "\n".join(found["/etc/prosody/prosody.cfg.lua"])
    assert '"muc_end_meeting"' in top and 'prosody_password_public_key_repo_url = "http://127.0.0.1:8000"' in top
    assert "systemctl restart prosody jicofo" in "\n".join(found["restart"])
    own = "\n".join(found["ticketing's own settings"])
    # The service was set up for docker's MUC domain: the Debian target says what to change.
    assert "TICKETING_JITSI_MUC_DOMAIN=conference.meet.example.com   # !! now muc.meet.jitsi" in own


def test_docker_with_every_feature(tmp_path, everything):
    out = jitsi_config(everything, "--target", "docker", cwd=tmp_path)
    found = sections(out)
    values = env_values(found["jitsi.env"])
    assert values["JWT_ASAP_KEYSERVER"] == "https://tickets.example.com/asap" and values["JWT_SIGN_TYPE"] == "RS256"
    assert "JWT_APP_SECRET" not in values
    assert values["GLOBAL_MODULES"] == "muc_end_meeting" and values["XMPP_MODULES"] == "muc_kick_participant"
    assert values["XMPP_MUC_MODULES"] == "token_affiliation" and values["ENABLE_AUTO_OWNER"] == "0"
    assert (values["XMPP_DOMAIN"], values["XMPP_MUC_DOMAIN"]) == ("meet.jitsi", "muc.meet.jitsi")
    assert values["GLOBAL_CONFIG"] == 'prosody_password_public_key_repo_url="http://system-keys:8000"'
    component = "\n".join(found["prosody/conf.d/event_sync.cfg.lua"])
    assert 'muc_component = "muc.meet.jitsi"' in component and 'breakout_component = "breakout.meet.jitsi"' in component
    assert f'api_headers = {{ ["Authorization"] = "Bearer {"e" * 40}"; }}' in component
    assert 'api_prefix = "https://tickets.example.com/jitsi"' in component
    assert "docker compose up -d --force-recreate prosody jicofo jvb web" in "\n".join(found["restart"])
    assert found["ticketing's own settings"] == [
        "TICKETING_JITSI_MUC_DOMAIN=muc.meet.jitsi", "TICKETING_JITSI_END_MEETING_URL=http://prosody:5280/end-meeting",
        "TICKETING_JITSI_KICK_URL=http://prosody:5280/kick-participant"]

    # The system key's public half, under the name Prosody asks for: sha256(kid).pem.
    name = f"system-keys/{hashlib.sha256(b'system-1').hexdigest()}.pem"
    printed = serialization.load_pem_public_key("\n".join(found[name]).encode())
    system = serialization.load_pem_private_key((tmp_path / "system.pem").read_bytes(), None)
    assert printed.public_numbers() == system.public_key().public_numbers()


def test_docker_out_writes_the_files_the_compose_stack_mounts(tmp_path, everything):
    out = jitsi_config(everything, "--target", "docker", "--out", str(tmp_path / "jitsi"), cwd=tmp_path)
    written = {Path(line.removeprefix("wrote ")).relative_to(tmp_path / "jitsi").as_posix()
               for line in out.splitlines() if line.startswith("wrote ")}
    digest = hashlib.sha256(b"system-1").hexdigest()
    assert written == {"jitsi.env", "prosody/conf.d/event_sync.cfg.lua", f"system-keys/{digest}.pem"}
    assert "JWT_SIGN_TYPE=RS256" in (tmp_path / "jitsi" / "jitsi.env").read_text().splitlines()
    assert lua_error((tmp_path / "jitsi" / "prosody/conf.d/event_sync.cfg.lua").read_text()) is None
    assert (tmp_path / "jitsi" / f"system-keys/{digest}.pem").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert "docker compose up -d" in out


def test_a_bad_target_is_one_line(tmp_path, environ):
    result = subprocess.run([str(TICKETING), "jitsi-config", "--target", "kubernetes"], env=environ, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1 and "--target" in result.stderr
    assert re.search(r"debian.*docker", result.stderr)
