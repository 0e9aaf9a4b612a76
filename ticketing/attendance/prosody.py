"""The Prosody settings that make `event_sync_component` post attendance events to this service.

`ticketing jitsi-config` prints them after the token settings: a Component block for the
target's Prosody config, and where jitsi-contrib's module file goes (docker-jitsi-meet has no
`.env` switch for this module, so the block is a file of its own in Prosody's conf.d).
"""

from __future__ import annotations

from ticketing.access.prosody import DOCKER, DOCKER_DOMAIN, LUA, TEXT, Section, jitsi_domain, lua, muc_domain
from ticketing.settings import Settings

EVENTS_PATH = "/jitsi"
MODULE = "mod_event_sync_component.lua"


def api_prefix(settings: Settings) -> str:
    """The component's `api_prefix`: it appends `/events/room/created` and the like."""
    return settings.base_url + EVENTS_PATH


def _component(settings: Settings, target: str) -> list[str]:
    domain = DOCKER_DOMAIN if target == DOCKER else jitsi_domain(settings)
    secret = settings.jitsi_events_secret
    lines = [
        f'Component {lua("esync." + domain)} "event_sync_component"',
        f"    muc_component = {lua(muc_domain(settings, target))}",
        f"    breakout_component = {lua('breakout.' + domain)}",
        f"    api_prefix = {lua(api_prefix(settings))}",
    ]
    if secret:
        lines.append(f'    api_headers = {{ ["Authorization"] = {lua("Bearer " + secret)}; }}')
    else:
        lines.append("    -- set TICKETING_JITSI_EVENTS_SECRET first: until then the service answers 404")
        lines.append('    api_headers = { ["Authorization"] = "Bearer <TICKETING_JITSI_EVENTS_SECRET>"; }')
    lines += [
        "    -- the token's context.user (our ticket id, name, email) in every occupant event",
        "    include_user_info = true",
    ]
    return lines


def event_sync_sections(settings: Settings, target: str) -> list[Section]:
    """Where the module goes and the Component block that turns it on, for `target`."""
    if target == DOCKER:
        module_dir, config = "prosody-plugins-custom", "prosody/conf.d/event_sync.cfg.lua"
        where = ("~/.jitsi-meet-cfg/prosody/prosody-plugins-custom/ in a plain docker-jitsi-meet; "
                 "deploy/jitsi/prosody-plugins-custom/ in this repository's compose stack")
    else:
        module_dir, config = "/usr/share/jitsi-meet/prosody-plugins", f"/etc/prosody/conf.avail/{jitsi_domain(settings)}.cfg.lua"
        where = "Jitsi's plugin folder"
    return [
        Section(TEXT, f"{module_dir}/{MODULE}", "attendance: the module itself", (
            f"jitsi-contrib/prosody-plugins, event_sync/{MODULE}, copied into {where}",)),
        Section(LUA, config, "attendance: the component that posts Prosody's events here (Prosody must reach "
                "the api_prefix; its log says when a post fails)" + (
                    "; in a plain docker-jitsi-meet: ~/.jitsi-meet-cfg/prosody/config/conf.d/event_sync.cfg.lua"
                    if target == DOCKER else ""), tuple(_component(settings, target))),
    ]
