"""What Jitsi needs to accept our tokens and our calls, per kind of deployment, as `ticketing
jitsi-config --target debian|docker` prints it: Prosody config (Lua), docker-jitsi-meet `.env`
lines, the system key's public key file, and the steps around them (packages, restarts).

Everything is derived from the running settings only, so pasting it makes Jitsi check exactly
the issuer, audience, algorithm and key (secret or key server) that this service signs with, and
makes the end-meeting and kick calls land where this service sends them.
"""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import urlsplit

from ticketing.access.keys import kid_digest, load_private_key, public_pem
from ticketing.settings import Settings

KEY_SERVER_PATH = "/asap"
DEBIAN, DOCKER = "debian", "docker"
TARGETS = (DEBIAN, DOCKER)
# docker-jitsi-meet's XMPP domains unless its .env changes them; we pin them in the .env we print.
DOCKER_DOMAIN = "meet.jitsi"
DOCKER_MUC = "muc." + DOCKER_DOMAIN
# Where the system key's public key is fetched from by default: the compose stack's small file
# server (deploy/compose.yaml), and on a Debian host one that only Prosody can reach.
SYSTEM_KEYS_URL = {DOCKER: "http://system-keys:8000", DEBIAN: "http://127.0.0.1:8000"}
_PLAIN_ENV = re.compile(r"[A-Za-z0-9_.:/@+=,%-]*")

LUA, ENV, PEM, TEXT = "lua", "env", "pem", "text"


@dataclasses.dataclass(frozen=True)
class Section:
    """One thing to paste: where it goes (`path`), what it is (`kind`) and its lines."""

    kind: str
    path: str
    what: str
    lines: tuple[str, ...]

    def render(self) -> str:
        return f"#### {self.path}: {self.what}\n" + "\n".join(self.lines) + "\n"


def key_server_url(settings: Settings) -> str:
    """Prosody's `asap_key_server`: Prosody appends `/{sha256_hex(kid)}.pem`."""
    return settings.base_url + KEY_SERVER_PATH


def lua(value: str) -> str:
    """A Lua string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def env(value: str) -> str:
    """A value for a docker compose `.env` line."""
    if _PLAIN_ENV.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def jitsi_domain(settings: Settings) -> str:
    return (urlsplit(settings.jitsi_url).hostname or settings.jitsi_subject).lower()


def muc_domain(settings: Settings, target: str) -> str:
    """Where the target keeps its conference rooms."""
    return DOCKER_MUC if target == DOCKER else "conference." + jitsi_domain(settings)


def _rs256(settings: Settings) -> bool:
    return settings.jitsi_algorithm == "RS256"


def _system_calls(settings: Settings) -> bool:
    return settings.jitsi_end_meeting_url is not None or settings.jitsi_kick_url is not None


def system_public_key(settings: Settings) -> tuple[str, str] | None:
    """(file name, PEM) of the system key's public half, as Prosody looks it up; None when unset."""
    if settings.jitsi_system_key_file is None or settings.jitsi_system_key_id is None:
        return None
    key = load_private_key(settings.jitsi_system_key_file, "JITSI_SYSTEM_KEY_FILE")
    return f"{kid_digest(settings.jitsi_system_key_id)}.pem", public_pem(key.public_key()).decode()


def _token_lines(settings: Settings) -> list[str]:
    lines = ['    authentication = "token"', f"    app_id = {lua(settings.jitsi_app_id)}"]
    if _rs256(settings):
        lines += [f"    asap_key_server = {lua(key_server_url(settings))}", '    signature_algorithm = "RS256"']
    else:
        lines.append(f"    app_secret = {lua(settings.jitsi_app_secret or '')}")
    return lines + [
        f"    asap_accepted_issuers = {{ {lua(settings.jitsi_app_id)} }}",
        f"    asap_accepted_audiences = {{ {lua(settings.jitsi_audience)} }}",
        "    allow_empty_token = false",
    ]


def _debian(settings: Settings, system_keys_url: str) -> list[Section]:
    domain = jitsi_domain(settings)
    host = [f"VirtualHost {lua(domain)}", *_token_lines(settings)]
    if settings.jitsi_kick_url is not None:
        host += ["    -- add to this VirtualHost's modules_enabled (it serves PUT /kick-participant on Prosody's HTTP port):",
                 '    --   "muc_kick_participant";']
    host += [
        "",
        f"Component {lua(muc_domain(settings, DEBIAN))} \"muc\"",
        "    -- add to this Component's modules_enabled (jitsi-meet-tokens adds token_verification):",
        '    --   "token_verification"; "token_affiliation";',
        "    -- token_affiliation makes host links (moderator: true) the room's owners",
    ]
    sections = [
        Section(TEXT, "packages", "on the Jitsi host, as root", (
            "apt-get install jitsi-meet-tokens   # asks for an app id and secret: give the ones below",
        )),
        Section(LUA, f"/etc/prosody/conf.avail/{domain}.cfg.lua", "set these in the sections of these names", tuple(host)),
    ]
    if _system_calls(settings):
        global_lines = [f"prosody_password_public_key_repo_url = {lua(system_keys_url)}"]
        if settings.jitsi_end_meeting_url is not None:
            global_lines = ['-- add to the global modules_enabled (it serves POST /end-meeting on Prosody\'s HTTP port):',
                            '--   "muc_end_meeting";', *global_lines]
        sections.append(Section(LUA, "/etc/prosody/prosody.cfg.lua", "at the top level, before any VirtualHost",
                                tuple(global_lines)))
    return sections + _key_sections(settings, DEBIAN, system_keys_url)


def _docker_env(settings: Settings, system_keys_url: str) -> list[str]:
    lines = [
        "ENABLE_AUTH=1",
        "ENABLE_GUESTS=0",
        "AUTH_TYPE=jwt",
        f"JWT_APP_ID={env(settings.jitsi_app_id)}",
    ]
    if _rs256(settings):
        lines += [f"JWT_ASAP_KEYSERVER={env(key_server_url(settings))}", "JWT_SIGN_TYPE=RS256"]
    else:
        lines.append(f"JWT_APP_SECRET={env(settings.jitsi_app_secret or '')}")
    lines += [
        f"JWT_ACCEPTED_ISSUERS={env(settings.jitsi_app_id)}",
        f"JWT_ACCEPTED_AUDIENCES={env(settings.jitsi_audience)}",
        "JWT_ALLOW_EMPTY=0",
        "JWT_TOKEN_AUTH_MODULE=token_verification",
        "XMPP_MUC_MODULES=token_affiliation",
        "# Otherwise the first attendee in an empty room would become its owner.",
        "ENABLE_AUTO_OWNER=0",
        "# The XMPP domains this service's settings name (TICKETING_JITSI_MUC_DOMAIN).",
        f"XMPP_DOMAIN={DOCKER_DOMAIN}",
        f"XMPP_MUC_DOMAIN={DOCKER_MUC}",
    ]
    if settings.jitsi_end_meeting_url is not None:
        lines.append("GLOBAL_MODULES=muc_end_meeting")
    if settings.jitsi_kick_url is not None:
        lines.append("XMPP_MODULES=muc_kick_participant")
    if _system_calls(settings):
        lines.append(f"GLOBAL_CONFIG=prosody_password_public_key_repo_url={lua(system_keys_url)}")
    return lines


def _docker(settings: Settings, system_keys_url: str) -> list[Section]:
    sections = [Section(ENV, "jitsi.env", "docker-jitsi-meet's .env (append these lines to it)",
                        tuple(_docker_env(settings, system_keys_url)))]
    return sections + _key_sections(settings, DOCKER, system_keys_url)


RESTART = {
    DEBIAN: Section(TEXT, "restart", "once everything above is in place", (
        "systemctl restart prosody jicofo jitsi-videobridge2",)),
    DOCKER: Section(TEXT, "restart", "in docker-jitsi-meet's folder (its containers write their config at start)", (
        "docker compose up -d --force-recreate prosody jicofo jvb web",)),
}


def _key_sections(settings: Settings, target: str, system_keys_url: str) -> list[Section]:
    found = system_public_key(settings) if _system_calls(settings) else None
    if found is None:
        return []
    name, pem = found
    folder = "system-keys" if target == DOCKER else "/etc/prosody/system-keys"
    return [Section(PEM, f"{folder}/{name}",
                    f"the system key's public key; serve this folder at {system_keys_url} to Prosody only",
                    tuple(pem.strip().splitlines()))]


def service_lines(settings: Settings, target: str) -> list[str]:
    """This service's own settings the target needs, with a warning where they differ now."""
    want = {"TICKETING_JITSI_MUC_DOMAIN": (settings.jitsi_muc_domain, muc_domain(settings, target))}
    prosody = "http://prosody:5280" if target == DOCKER else "http://localhost:5280"
    if settings.jitsi_end_meeting_url is not None:
        want["TICKETING_JITSI_END_MEETING_URL"] = (settings.jitsi_end_meeting_url, prosody + "/end-meeting")
    if settings.jitsi_kick_url is not None:
        want["TICKETING_JITSI_KICK_URL"] = (settings.jitsi_kick_url, prosody + "/kick-participant")
    lines = []
    for name, (now, needed) in want.items():
        if now == needed:
            lines.append(f"{name}={needed}")
        elif name == "TICKETING_JITSI_MUC_DOMAIN":
            lines.append(f"{name}={needed}   # !! now {now}: end-meeting calls would name rooms Prosody does not have")
        else:
            lines.append(f"{name}={now}   # the usual address of Prosody's HTTP port here is {needed}")
    return lines


def jitsi_config(settings: Settings, target: str = DEBIAN, *, extra: list[Section] | tuple[Section, ...] = (),
                 system_keys_url: str | None = None) -> list[Section]:
    """The sections `ticketing jitsi-config --target …` prints: token settings first, then `extra`
    (another room's), the restart, and this service's own settings that must match."""
    url = system_keys_url or SYSTEM_KEYS_URL[target]
    sections = _docker(settings, url) if target == DOCKER else _debian(settings, url)
    own = Section(TEXT, "ticketing's own settings", "this service's .env, to match", tuple(service_lines(settings, target)))
    return [*sections, *extra, RESTART[target], own]


def summary(settings: Settings) -> str:
    mode = (f"RS256, key id {settings.jitsi_key_id!r}, public keys at {key_server_url(settings)}/<sha256(kid)>.pem"
            if _rs256(settings) else "HS256 with the shared app secret")
    return (f"# Tokens: {mode}; iss {settings.jitsi_app_id!r}, aud {settings.jitsi_audience!r}, "
            f"sub {settings.jitsi_subject!r}.\n")
