"""Bodies shaped as jitsi-contrib's event_sync_component posts them (event_sync/README.md and
mod_event_sync_component.lua, with include_user_info = true), and a client that posts them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp.test_utils import TestClient

MUC = "conference.meet.example.com"


def _ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def user(ticket_id: str | None, name: str = "Bea Buyer", email: str = "bea@example.com") -> dict[str, Any]:
    """What include_user_info copies from the token's context.user (nothing for a guest without one)."""
    if ticket_id is None:
        return {}
    return {"id": ticket_id, "name": name, "email": email, "moderator": False}


def _room(room: str, breakout: str | None) -> dict[str, Any]:
    # handle_main_room_created / handle_breakout_room_created: the main room's name and JID either way.
    fields: dict[str, Any] = {"room_name": room, "room_jid": f"{room}@{MUC}", "is_breakout": breakout is not None}
    if breakout is not None:
        fields["breakout_room_id"] = breakout
    return fields


def occupant(jid: str, joined: dt.datetime, left: dt.datetime | None = None, **context: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"occupant_jid": jid, "joined_at": _ts(joined)}
    if left is not None:
        data["left_at"] = _ts(left)
    data.update(context)
    return data


def room_created(room: str, at: dt.datetime, *, breakout: str | None = None) -> tuple[str, dict[str, Any]]:
    return "room/created", {"event_name": "muc-room-created", "created_at": _ts(at), **_room(room, breakout)}


def room_destroyed(room: str, created: dt.datetime, destroyed: dt.datetime, occupants: list[dict[str, Any]], *,
                   breakout: str | None = None) -> tuple[str, dict[str, Any]]:
    return "room/destroyed", {"event_name": "muc-room-destroyed", "created_at": _ts(created),
                              "destroyed_at": _ts(destroyed), "all_occupants": occupants, **_room(room, breakout)}


def joined(room: str, who: dict[str, Any], active: int, *, breakout: str | None = None) -> tuple[str, dict[str, Any]]:
    body = {k: v for k, v in who.items() if k != "left_at"}
    return "occupant/joined", {"event_name": "muc-occupant-joined", "occupant": body,
                               "active_occupants_count": active, **_room(room, breakout)}


def left(room: str, who: dict[str, Any], active: int, *, breakout: str | None = None) -> tuple[str, dict[str, Any]]:
    assert "left_at" in who
    return "occupant/left", {"event_name": "muc-occupant-left", "occupant": who,
                             "active_occupants_count": active, **_room(room, breakout)}


async def post(client: TestClient, secret: str, event: tuple[str, dict[str, Any]]):
    """POST one event the way the component does (its headers, our bearer secret)."""
    kind, body = event
    return await client.post(f"/jitsi/events/{kind}", json=body,
                             headers={"Authorization": f"Bearer {secret}", "User-Agent": "Prosody (0.12.4; posix)"})
