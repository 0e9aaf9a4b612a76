"""The Prosody settings that make `event_sync_component` post attendance events to this service.

Printed by `ticketing jitsi-config` after the token settings: a Component block for a plain
Prosody, and the steps for docker-jitsi-meet, which has no `.env` switch for this module.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ticketing.settings import Settings

EVENTS_PATH = "/jitsi"


def api_prefix(settings: Settings) -> str:
    """The component's `api_prefix`: it appends `/events/room/created` and the like."""
    return settings.base_url + EVENTS_PATH


def _lua(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _component(domain: str, muc: str, breakout: str, settings: Settings) -> list[str]:
    secret = settings.jitsi_events_secret
    lines = [
        f'Component {_lua("esync." + domain)} "event_sync_component"',
        f"    muc_component = {_lua(muc)}",
        f"    breakout_component = {_lua(breakout)}",
        f"    api_prefix = {_lua(api_prefix(settings))}",
    ]
    if secret:
        lines.append(f'    api_headers = {{ ["Authorization"] = {_lua("Bearer " + secret)}; }}')
    else:
        lines.append("    -- set TICKETING_JITSI_EVENTS_SECRET first: until then the service answers 404")
        lines.append('    api_headers = { ["Authorization"] = "Bearer <TICKETING_JITSI_EVENTS_SECRET>"; }')
    lines += [
        "    -- the token's context.user (our ticket id, name, email) in every occupant event",
        "    include_user_info = true",
    ]
    return lines


def event_sync_config(settings: Settings) -> str:
    """The plain Prosody Component block and the docker-jitsi-meet steps, both for this service."""
    domain = (urlsplit(settings.jitsi_url).hostname or settings.jitsi_subject).lower()
    lines = [
        "-- Attendance: jitsi-contrib/prosody-plugins event_sync/mod_event_sync_component.lua, copied into",
        "-- Jitsi's prosody-plugins folder (Debian: /usr/share/jitsi-meet/prosody-plugins/), then in",
        f"-- /etc/prosody/conf.avail/{domain}.cfg.lua (its log says when a post fails):",
        *_component(domain, settings.jitsi_muc_domain, "breakout." + domain, settings),
        "",
        "# docker-jitsi-meet: no .env switch for this module. Put mod_event_sync_component.lua into",
        "# ~/.jitsi-meet-cfg/prosody/prosody-plugins-custom/ and this block into",
        "# ~/.jitsi-meet-cfg/prosody/config/conf.d/event_sync.cfg.lua (the names are the image's defaults:",
        "# XMPP_DOMAIN meet.jitsi, XMPP_MUC_DOMAIN muc.meet.jitsi), then restart the prosody container.",
        "# The service must be reachable from that container at the api_prefix below.",
        *("# " + line for line in _component("meet.jitsi", "muc.meet.jitsi", "breakout.meet.jitsi", settings)),
    ]
    return "\n".join(lines) + "\n"
