"""Token claims and verification, held to the rules of Jitsi's Prosody token plugins.

Those plugins (jitsi-meet, resources/prosody-plugins/luajwtjitsi.lib.lua and
token/util.lib.lua) require typ "JWT", the one configured alg, numeric exp/nbf with no
leeway (refused when now >= exp or now < nbf), iss among the accepted issuers, an aud
compared as one string, a room claim, and with a key server a kid whose public key sits at
{asap_key_server}/{sha256_hex(kid)}.pem. Room matching lower-cases the token's room.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.access.conftest import SECRET
from ticketing.access.keys import kid_digest
from ticketing.access.tokens import CLOCK_SKEW, TokenExpired, TokenInvalid, TokenNotYetValid, Tokens, window
from ticketing.db.models import Organizer, Ticket, TicketStatus, Webinar, WebinarStatus
from ticketing.settings import Settings, SettingsError

STARTS = dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC)
ENDS = STARTS + dt.timedelta(hours=1)
NOW = STARTS - dt.timedelta(minutes=5)


def settings_for(tmp_path: Path, **values: str) -> Settings:
    env = {"TICKETING_VAR_DIR": str(tmp_path / "var"), "TICKETING_JITSI_APP_SECRET": SECRET}
    env.update({f"TICKETING_{k.upper()}": v for k, v in values.items()})
    return Settings.from_env(env, dotenv=None)


def webinar(room: str = "widgets-101") -> Webinar:
    return Webinar(id=uuid.uuid4(), organizer_id=uuid.uuid4(), title="Widgets", starts_at=STARTS, ends_at=ENDS,
                   timezone="UTC", price_amount=100, currency="eur", room=room, status=WebinarStatus.SCHEDULED)


def ticket(name: str = "Bea Buyer", email: str = "bea@example.com") -> Ticket:
    return Ticket(id=uuid.uuid4(), order_id=uuid.uuid4(), webinar_id=uuid.uuid4(), seq=0, email=email, name=name,
                  code_hash="0" * 64, status=TicketStatus.VALID, join_count=0)


def segments(token: str) -> tuple[dict, dict]:
    def part(text: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    header, payload, _ = token.split(".")
    return part(header), part(payload)


def test_hs256_attendee_claims_are_exactly_what_prosody_checks(tmp_path):
    settings = settings_for(tmp_path, jitsi_url="https://Meet.Example.com", jitsi_app_id="shop", jitsi_audience="meet")
    t, w = ticket(), webinar()
    token = Tokens.from_settings(settings).attendee_token(t, w, now=NOW)
    header, claims = segments(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    opens = STARTS - dt.timedelta(minutes=15)
    assert claims == {
        "iss": "shop", "aud": "meet", "sub": "meet.example.com", "room": "widgets-101",
        "iat": int(NOW.timestamp()),
        "nbf": int(opens.timestamp()) - 60,
        "exp": int((ENDS + dt.timedelta(minutes=30)).timestamp()),
        "context": {"user": {"id": str(t.id), "name": "Bea Buyer", "email": "bea@example.com", "moderator": False}},
    }
    # Signed with the app secret exactly as Prosody's app_secret: HMAC-SHA256 over the raw bytes.
    assert jwt.decode(token, SECRET.encode(), algorithms=["HS256"], audience="meet", issuer="shop",
                      options={"verify_nbf": False, "verify_exp": False, "verify_iat": False})["room"] == "widgets-101"


def test_name_falls_back_to_the_email_local_part(tmp_path):
    tokens = Tokens.from_settings(settings_for(tmp_path))
    _, claims = segments(tokens.attendee_token(ticket(name="  ", email="carla@example.org"), webinar(), now=NOW))
    assert claims["context"]["user"]["name"] == "carla"


def test_rs256_has_kid_and_verifies_with_the_public_key_only(tmp_path, key_dir):
    settings = settings_for(tmp_path, jitsi_private_key_file=str(key_dir / "current.key"), jitsi_key_id="prod-1")
    token = Tokens.from_settings(settings).attendee_token(ticket(), webinar(), now=NOW)
    header, claims = segments(token)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": "prod-1"}
    public = serialization.load_pem_public_key((key_dir / "current.pub").read_bytes())
    decoded = jwt.decode(token, public, algorithms=["RS256"], audience="jitsi", issuer="ticketing",
                         options={"verify_nbf": False, "verify_exp": False, "verify_iat": False})
    assert decoded["sub"] == "meet.jit.si" and decoded["room"] == "widgets-101"


def test_tenant_subject_and_features(tmp_path):
    settings = settings_for(tmp_path, jitsi_url="https://meet.example.com/acme", jitsi_subject="ACME",
                            jitsi_features="recording=false,lobby_bypass=true",
                            jitsi_host_features="recording=true,livestreaming")
    tokens = Tokens.from_settings(settings)
    _, attendee = segments(tokens.attendee_token(ticket(), webinar(), now=NOW))
    assert attendee["sub"] == "acme"
    assert attendee["context"]["features"] == {"recording": False, "lobby_bypass": True}
    organizer = Organizer(id=uuid.uuid4(), name="Ada", email="ada@example.com", api_key_hash="x")
    _, host = segments(tokens.host_token(organizer, webinar(), now=NOW))
    assert host["context"]["user"] == {"id": str(organizer.id), "name": "Ada", "email": "ada@example.com",
                                       "moderator": True, "affiliation": "owner"}
    assert host["context"]["features"] == {"recording": True, "livestreaming": True}
    assert (host["nbf"], host["exp"]) == (attendee["nbf"], attendee["exp"])


def test_no_features_claim_when_none_configured(tmp_path):
    _, claims = segments(Tokens.from_settings(settings_for(tmp_path)).attendee_token(ticket(), webinar(), now=NOW))
    assert "features" not in claims["context"]


def test_verify_applies_prosodys_time_rules_without_leeway(tmp_path):
    settings = settings_for(tmp_path)
    tokens = Tokens.from_settings(settings)
    token = tokens.attendee_token(ticket(), webinar(), now=NOW)
    opens, closes = window(webinar(), settings)
    nbf, exp = (opens - CLOCK_SKEW).timestamp(), closes.timestamp()
    with pytest.raises(TokenNotYetValid):
        tokens.verify(token, now=nbf - 1)
    assert tokens.verify(token, now=nbf)["room"] == "widgets-101"
    assert tokens.verify(token, now=exp - 1)["room"] == "widgets-101"
    with pytest.raises(TokenExpired):
        tokens.verify(token, now=exp)  # Prosody refuses when now >= exp


def test_verify_refuses_other_algorithms_and_wrong_claims(tmp_path, key_dir):
    settings = settings_for(tmp_path)
    tokens = Tokens.from_settings(settings)
    good = segments(tokens.attendee_token(ticket(), webinar(), now=NOW))[1]
    at = NOW.timestamp()

    unsigned = jwt.encode(good, None, algorithm="none")
    with pytest.raises(TokenInvalid, match="alg"):
        tokens.verify(unsigned, now=at)
    with pytest.raises(TokenInvalid, match="alg"):
        tokens.verify(jwt.encode(good, SECRET * 2, algorithm="HS512"), now=at)
    with pytest.raises(TokenInvalid, match="typ"):
        tokens.verify(jwt.encode(good, SECRET, algorithm="HS256", headers={"typ": "JOSE"}), now=at)
    with pytest.raises(TokenInvalid, match="signature"):
        tokens.verify(jwt.encode(good, "t" * 40, algorithm="HS256"), now=at)
    with pytest.raises(TokenInvalid):  # Prosody compares aud as one string; a list never matches
        tokens.verify(jwt.encode({**good, "aud": ["jitsi"]}, SECRET, algorithm="HS256"), now=at)
    with pytest.raises(TokenInvalid):
        tokens.verify(jwt.encode({**good, "iss": "someone-else"}, SECRET, algorithm="HS256"), now=at)
    without_room = {k: v for k, v in good.items() if k != "room"}
    with pytest.raises(TokenInvalid, match="room"):
        tokens.verify(jwt.encode(without_room, SECRET, algorithm="HS256"), now=at)
    with pytest.raises(TokenInvalid, match="exp"):
        tokens.verify(jwt.encode({**good, "exp": str(good["exp"])}, SECRET, algorithm="HS256"), now=at)


def test_rs256_verify_refuses_hs256_signed_with_the_public_key_and_unknown_kids(tmp_path, key_dir):
    settings = settings_for(tmp_path, jitsi_private_key_file=str(key_dir / "current.key"), jitsi_key_id="prod-1")
    tokens = Tokens.from_settings(settings)
    claims = segments(tokens.attendee_token(ticket(), webinar(), now=NOW))[1]
    at = NOW.timestamp()
    public_pem = (key_dir / "current.pub").read_bytes()
    # The classic confusion: an HS256 token keyed with the (public) PEM text.
    forged = jwt.api_jws.PyJWS(algorithms=None)
    forged._algorithms["HS256"].prepare_key = lambda key: key  # PyJWT refuses PEM HMAC keys; a forger would not
    confused = forged.encode(json.dumps(claims).encode(), public_pem, algorithm="HS256", headers={"kid": "prod-1"})
    with pytest.raises(TokenInvalid, match="alg"):
        tokens.verify(confused, now=at)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(TokenInvalid, match="key id"):
        tokens.verify(jwt.encode(claims, other, algorithm="RS256", headers={"kid": "prod-2"}), now=at)
    with pytest.raises(TokenInvalid, match="signature"):
        tokens.verify(jwt.encode(claims, other, algorithm="RS256", headers={"kid": "prod-1"}), now=at)


def test_kid_digest_is_the_hex_sha256_prosody_asks_for():
    assert kid_digest("prod-1") == hashlib.sha256(b"prod-1").hexdigest()


@pytest.mark.parametrize(("content", "message"), [
    (b"not a key at all", "is not a PEM private key"),
    (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "is not a PEM private key"),
])
def test_a_bad_private_key_is_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.pem"
    path.write_bytes(content)
    with pytest.raises(SettingsError, match=message) as caught:
        Tokens.from_settings(settings_for(tmp_path, jitsi_private_key_file=str(path), jitsi_key_id="k"))
    assert "\n" not in str(caught.value) and str(caught.value).startswith("TICKETING_JITSI_PRIVATE_KEY_FILE: ")


def test_encrypted_small_and_non_rsa_keys_are_refused(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pw")))
    with pytest.raises(SettingsError, match="encrypted"):
        Tokens.from_settings(settings_for(tmp_path, jitsi_private_key_file=str(encrypted), jitsi_key_id="k"))
    small = tmp_path / "small.pem"
    small.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(SettingsError, match="2048"):
        Tokens.from_settings(settings_for(tmp_path, jitsi_private_key_file=str(small), jitsi_key_id="k"))
    from cryptography.hazmat.primitives.asymmetric import ec

    curve = tmp_path / "ec.pem"
    curve.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(SettingsError, match="RSA"):
        Tokens.from_settings(settings_for(tmp_path, jitsi_private_key_file=str(curve), jitsi_key_id="k"))


def test_a_bad_next_public_key_is_refused(tmp_path, key_dir):
    with pytest.raises(SettingsError, match="TICKETING_JITSI_NEXT_PUBLIC_KEY_FILE: .* is not a PEM public key"):
        Tokens.from_settings(settings_for(tmp_path, jitsi_private_key_file=str(key_dir / "current.key"),
                                          jitsi_key_id="a", jitsi_next_public_key_file=str(key_dir / "next.key"),
                                          jitsi_next_key_id="b"))
