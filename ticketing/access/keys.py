"""RS256 keys for Jitsi tokens: the private key, loaded once, and the public keys Prosody fetches.

Prosody's `asap_key_server` asks for `{server}/{sha256_hex(kid)}.pem`; the current key and an
optional next one are both served, so a new key can be published before tokens use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from ticketing.settings import PREFIX, Settings, SettingsError

logger = logging.getLogger(__name__)

# Below this an RSA key is too weak to sign anything that grants access.
MIN_RSA_BITS = 2048


def kid_digest(kid: str) -> str:
    """The file name stem Prosody asks the key server for: hex SHA-256 of the key id."""
    return hashlib.sha256(kid.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class KeyRing:
    """The signing key (None in HS256 mode) and the public keys served and trusted, by key id."""

    private_key: RSAPrivateKey | None = None
    kid: str | None = None
    public_keys: Mapping[str, RSAPublicKey] = dataclasses.field(default_factory=dict)

    def pem_for_digest(self, digest: str) -> bytes | None:
        """The PEM of the public key whose `kid_digest` is `digest`, or None."""
        for kid, key in self.public_keys.items():
            if kid_digest(kid) == digest:
                return public_pem(key)
        return None


def public_pem(key: RSAPublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path, variable: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SettingsError(f"{PREFIX}{variable}: cannot read {str(path)!r}: {error.strerror}") from None


def _check_rsa(key: object, variable: str, path: Path, kind: str) -> None:
    if not isinstance(key, RSAPrivateKey | RSAPublicKey):
        raise SettingsError(f"{PREFIX}{variable}: {str(path)!r} holds a {type(key).__name__.lstrip('_')}, "
                            f"RS256 needs an RSA {kind} key")
    if key.key_size < MIN_RSA_BITS:
        raise SettingsError(f"{PREFIX}{variable}: the RSA key in {str(path)!r} has {key.key_size} bits, "
                            f"at least {MIN_RSA_BITS} are needed")


def load_private_key(path: Path, variable: str = "JITSI_PRIVATE_KEY_FILE") -> RSAPrivateKey:
    """The unencrypted PEM RSA private key in `path`; SettingsError naming `variable` otherwise."""
    data = _read(path, variable)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise SettingsError(f"{PREFIX}{variable}: the key in {str(path)!r} is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SettingsError(f"{PREFIX}{variable}: {str(path)!r} is not a PEM private key "
                            "(expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)") from None
    _check_rsa(key, variable, path, "private")
    return key


def load_public_key(path: Path) -> RSAPublicKey:
    """The PEM RSA public key in `path` (the next key during a rotation)."""
    variable = "JITSI_NEXT_PUBLIC_KEY_FILE"
    data = _read(path, variable)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SettingsError(f"{PREFIX}{variable}: {str(path)!r} is not a PEM public key "
                            "(expected -----BEGIN PUBLIC KEY-----)") from None
    _check_rsa(key, variable, path, "public")
    return key


def load_keys(settings: Settings) -> KeyRing:
    """The key ring for `settings`: empty in HS256 mode. Raises SettingsError on a bad key file."""
    if settings.jitsi_private_key_file is None or settings.jitsi_key_id is None:
        return KeyRing()
    private_key = load_private_key(settings.jitsi_private_key_file)
    public_keys: dict[str, RSAPublicKey] = {settings.jitsi_key_id: private_key.public_key()}
    if settings.jitsi_next_public_key_file is not None and settings.jitsi_next_key_id is not None:
        if settings.jitsi_next_key_id == settings.jitsi_key_id:
            raise SettingsError(f"{PREFIX}JITSI_NEXT_KEY_ID: must differ from TICKETING_JITSI_KEY_ID")
        public_keys[settings.jitsi_next_key_id] = load_public_key(settings.jitsi_next_public_key_file)
    logger.info("RS256 keys loaded", extra={"kid": settings.jitsi_key_id, "served": len(public_keys)})
    return KeyRing(private_key=private_key, kid=settings.jitsi_key_id, public_keys=public_keys)
