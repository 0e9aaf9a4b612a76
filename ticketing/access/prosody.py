"""What Prosody needs to accept our tokens: a plain Prosody config block and docker-jitsi-meet `.env` lines.

Both are derived from the running settings only, so pasting them makes Jitsi check exactly
the issuer, audience, algorithm and key (secret or key server) that this service signs with.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ticketing.settings import Settings

KEY_SERVER_PATH = "/asap"
_PLAIN_ENV = re.compile(r"[A-Za-z0-9_.:/@+=,%-]*")


def key_server_url(settings: Settings) -> str:
    """Prosody's `asap_key_server`: Prosody appends `/{sha256_hex(kid)}.pem`."""
    return settings.base_url + KEY_SERVER_PATH


def _lua(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _env(value: str) -> str:
    if _PLAIN_ENV.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def prosody_config(settings: Settings) -> str:
    """The VirtualHost and conference Component settings for a Prosody with jitsi-meet-tokens."""
    domain = urlsplit(settings.jitsi_url).hostname or settings.jitsi_subject
    rs256 = settings.jitsi_algorithm == "RS256"
    lines = [
        f"-- Prosody: in /etc/prosody/conf.avail/{domain}.cfg.lua (the names are your XMPP domain's)",
        f"VirtualHost {_lua(domain)}",
        '    authentication = "token"',
        f"    app_id = {_lua(settings.jitsi_app_id)}",
    ]
    if rs256:
        lines.append(f"    asap_key_server = {_lua(key_server_url(settings))}")
        lines.append('    signature_algorithm = "RS256"')
    else:
        lines.append(f"    app_secret = {_lua(settings.jitsi_app_secret or '')}")
    lines += [
        f"    asap_accepted_issuers = {{ {_lua(settings.jitsi_app_id)} }}",
        f"    asap_accepted_audiences = {{ {_lua(settings.jitsi_audience)} }}",
        "    allow_empty_token = false",
        "",
        f"Component {_lua('conference.' + domain)} \"muc\"",
        "    -- add to the modules_enabled already there: token_affiliation makes host links moderators",
        '    modules_enabled = { "token_verification"; "token_affiliation" }',
    ]
    return "\n".join(lines) + "\n"


def docker_env(settings: Settings) -> str:
    """The same as docker-jitsi-meet `.env` lines."""
    lines = [
        "# docker-jitsi-meet: in .env",
        "ENABLE_AUTH=1",
        "ENABLE_GUESTS=0",
        "AUTH_TYPE=jwt",
        f"JWT_APP_ID={_env(settings.jitsi_app_id)}",
    ]
    if settings.jitsi_algorithm == "RS256":
        lines.append(f"JWT_ASAP_KEYSERVER={_env(key_server_url(settings))}")
    else:
        lines.append(f"JWT_APP_SECRET={_env(settings.jitsi_app_secret or '')}")
    lines += [
        f"JWT_ACCEPTED_ISSUERS={_env(settings.jitsi_app_id)}",
        f"JWT_ACCEPTED_AUDIENCES={_env(settings.jitsi_audience)}",
        "JWT_ALLOW_EMPTY=0",
        "JWT_TOKEN_AUTH_MODULE=token_verification",
        "XMPP_MUC_MODULES=token_affiliation",
        # Otherwise the first attendee in an empty room would become its owner.
        "ENABLE_AUTO_OWNER=0",
        # docker-jitsi-meet's XMPP domain is meet.jitsi unless set; its domain check is off by default.
        f"# tokens carry sub {settings.jitsi_subject!r}: with JWT_ENABLE_DOMAIN_VERIFICATION=1 it must equal "
        "XMPP_DOMAIN (set TICKETING_JITSI_SUBJECT to match)",
    ]
    return "\n".join(lines) + "\n"


def jitsi_config(settings: Settings) -> str:
    """Both blocks, as `ticketing jitsi-config` prints them."""
    mode = (f"RS256, key id {settings.jitsi_key_id!r}, public keys at {key_server_url(settings)}/<sha256(kid)>.pem"
            if settings.jitsi_algorithm == "RS256" else "HS256 with the shared app secret")
    header = (f"-- Tokens: {mode}; iss {settings.jitsi_app_id!r}, aud {settings.jitsi_audience!r}, "
              f"sub {settings.jitsi_subject!r}.\n\n")
    return header + prosody_config(settings) + "\n" + docker_env(settings)
