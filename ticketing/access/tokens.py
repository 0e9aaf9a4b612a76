"""Jitsi tokens: minting exactly what Prosody's token plugins check, and verifying our own.

Prosody allows no clock-skew leeway, wants `typ: "JWT"`, exactly one algorithm (HS256 with
`app_secret`, RS256 with a key server and a `kid`), a string `aud`, and `iss`, `sub` and
`room`. Tokens are minted at the moment a link is opened and never stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import Mapping
from typing import Any

import jwt

from ticketing.access.keys import KeyRing, load_keys
from ticketing.db.models import Organizer, Ticket, Webinar
from ticketing.settings import Settings

# Prosody has no leeway, so the token opens a minute early for a Jitsi clock running behind.
CLOCK_SKEW = dt.timedelta(seconds=60)
REQUIRED_CLAIMS = ("iss", "aud", "sub", "room", "exp", "nbf", "iat")


class TokenError(Exception):
    """The token is not acceptable."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class TokenInvalid(TokenError):
    """The token is malformed, wrongly signed, or carries the wrong claims."""


class TokenExpired(TokenError):
    """The token has expired."""


class TokenNotYetValid(TokenError):
    """The token is not valid yet."""


def window(webinar: Webinar, settings: Settings) -> tuple[dt.datetime, dt.datetime]:
    """When the webinar's join links work: from `starts_at` − early until `ends_at` + grace."""
    return (webinar.starts_at - dt.timedelta(minutes=settings.join_early_minutes),
            webinar.ends_at + dt.timedelta(minutes=settings.join_grace_minutes))


def display_name(ticket: Ticket) -> str:
    """The buyer's name, else the part of the email before the @ (others in the room see it)."""
    return ticket.name.strip() or ticket.email.partition("@")[0] or "Guest"


def room_url(settings: Settings, room: str, token: str) -> str:
    """The Jitsi URL that enters `room` with `token` (room names need no escaping)."""
    return f"{settings.jitsi_url}/{room}?jwt={token}"


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Mints and verifies Jitsi tokens for one configuration; build it once with `from_settings`."""

    settings: Settings
    keys: KeyRing

    @classmethod
    def from_settings(cls, settings: Settings) -> Tokens:
        """Load the keys (RS256) once; raises SettingsError on a bad key file."""
        return cls(settings=settings, keys=load_keys(settings))

    @property
    def algorithm(self) -> str:
        return "RS256" if self.keys.private_key is not None else "HS256"

    # --- minting ----------------------------------------------------------------------

    def claims(self, *, room: str, user: Mapping[str, Any], not_before: dt.datetime, expires: dt.datetime,
               now: dt.datetime, features: Mapping[str, bool]) -> dict[str, Any]:
        """The claim set Prosody checks, for one room and one time window."""
        context: dict[str, Any] = {"user": dict(user)}
        if features:
            context["features"] = {name: bool(value) for name, value in features.items()}
        return {
            "iss": self.settings.jitsi_app_id,
            "aud": self.settings.jitsi_audience,
            "sub": self.settings.jitsi_subject.lower(),
            "room": room.lower(),
            "iat": int(now.timestamp()),
            "nbf": int(not_before.timestamp()),
            "exp": int(expires.timestamp()),
            "context": context,
        }

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign `claims` with the configured algorithm and key."""
        headers: dict[str, str] = {"typ": "JWT"}
        if self.keys.private_key is not None:
            headers["kid"] = self.keys.kid or ""
            return jwt.encode(dict(claims), self.keys.private_key, algorithm="RS256", headers=headers)
        return jwt.encode(dict(claims), self._secret(), algorithm="HS256", headers=headers)

    def attendee_token(self, ticket: Ticket, webinar: Webinar, *, now: dt.datetime) -> str:
        """The token for one ticket holder: the webinar's room and window, never a moderator."""
        opens, closes = window(webinar, self.settings)
        user = {"id": str(ticket.id), "name": display_name(ticket), "email": ticket.email, "moderator": False}
        return self.sign(self.claims(room=webinar.room, user=user, not_before=opens - CLOCK_SKEW, expires=closes,
                                     now=now, features=self.settings.jitsi_features))

    def host_token(self, organizer: Organizer, webinar: Webinar, *, now: dt.datetime) -> str:
        """The organizer's token: moderator and owner of the webinar's room, for the same window."""
        opens, closes = window(webinar, self.settings)
        user = {"id": str(organizer.id), "name": organizer.name, "email": organizer.email,
                "moderator": True, "affiliation": "owner"}
        return self.sign(self.claims(room=webinar.room, user=user, not_before=opens - CLOCK_SKEW, expires=closes,
                                     now=now, features=self.settings.jitsi_host_features))

    def manual_token(self, *, room: str, name: str, email: str | None, moderator: bool, ttl: dt.timedelta,
                     now: dt.datetime) -> str:
        """A token made by hand (`ticketing token`): valid from now until now + `ttl`."""
        user: dict[str, Any] = {"id": f"manual-{uuid.uuid4()}", "name": name, "moderator": moderator}
        if email:
            user["email"] = email
        if moderator:
            user["affiliation"] = "owner"
        features = self.settings.jitsi_host_features if moderator else self.settings.jitsi_features
        return self.sign(self.claims(room=room, user=user, not_before=now - CLOCK_SKEW, expires=now + ttl,
                                     now=now, features=features))

    # --- verifying --------------------------------------------------------------------

    def verify(self, token: str, *, now: float | None = None) -> dict[str, Any]:
        """The claims of one of our tokens, checked as Prosody checks them at `now` (Unix time).

        Only the configured algorithm is accepted (no `none`, no HS256 token checked against
        an RSA public key); `aud` must be our audience as a string, `iss` our app id.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise TokenInvalid(f"not a JWT: {error}") from None
        if header.get("typ") != "JWT":
            raise TokenInvalid("the header's typ must be JWT")
        if header.get("alg") != self.algorithm:
            raise TokenInvalid(f"the header's alg must be {self.algorithm}, got {header.get('alg')!r}")
        key: Any
        if self.algorithm == "RS256":
            kid = header.get("kid")
            if not isinstance(kid, str) or kid not in self.keys.public_keys:
                raise TokenInvalid(f"unknown key id {kid!r}")
            key = self.keys.public_keys[kid]
        else:
            key = self._secret()
        try:
            claims = jwt.decode(
                token, key, algorithms=[self.algorithm], audience=self.settings.jitsi_audience,
                issuer=self.settings.jitsi_app_id,
                # Times are checked below against `now`, exactly as Prosody compares them.
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True, "verify_exp": False,
                         "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError:
            raise TokenInvalid("the signature does not match") from None
        except jwt.PyJWTError as error:
            raise TokenInvalid(str(error)) from None
        for name in ("exp", "nbf", "iat"):
            if isinstance(claims[name], bool) or not isinstance(claims[name], int | float):
                raise TokenInvalid(f"{name} must be a number")
        if not isinstance(claims["room"], str) or not isinstance(claims["sub"], str):
            raise TokenInvalid("room and sub must be strings")
        moment = time.time() if now is None else now
        if moment >= claims["exp"]:
            raise TokenExpired(f"expired {int(moment - claims['exp'])} s ago")
        if moment < claims["nbf"]:
            raise TokenNotYetValid(f"valid only in {int(claims['nbf'] - moment)} s")
        return claims

    def _secret(self) -> bytes:
        secret = self.settings.jitsi_app_secret
        if not secret:
            raise TokenError("no TICKETING_JITSI_APP_SECRET is configured")
        return secret.encode()
