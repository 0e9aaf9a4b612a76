"""Sealing a secret code to a public key, so only the holder of the private half reads it.

The database keeps hashes of codes, never the codes. Two places must still show a code
later: the order page shows the join links of the seats the buyer holds, and the checkout's
success page shows the order page link. Each code is sealed (X25519 + HKDF + AES-GCM) to a
public key whose private half the database never sees: derived from the order code for the
order page, kept in the buying browser's cookie for the success page.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

_PAGE_KEY_INFO = b"ticketing order page key v1"
_SEAL_INFO = b"ticketing sealed code v1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _kdf(info: bytes) -> HKDF:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)


def page_private_key(order_code: str) -> X25519PrivateKey:
    """The order page's private key: derived from the order code, so it exists only where the code does."""
    return X25519PrivateKey.from_private_bytes(_kdf(_PAGE_KEY_INFO).derive(order_code.encode()))


def public_key(private: X25519PrivateKey) -> str:
    return _b64(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def private_key_text(private: X25519PrivateKey) -> str:
    return _b64(private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))


def private_key_from_text(text: str) -> X25519PrivateKey | None:
    try:
        return X25519PrivateKey.from_private_bytes(_unb64(text))
    except (ValueError, TypeError):
        return None


def new_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def seal(public: str, secret: str) -> str:
    """`secret` encrypted so that only the private half of `public` opens it."""
    recipient = _unb64(public)
    ephemeral = X25519PrivateKey.generate()
    sender = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = _kdf(_SEAL_INFO + sender + recipient).derive(ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient)))
    nonce = os.urandom(12)
    return _b64(sender + nonce + AESGCM(key).encrypt(nonce, secret.encode(), None))


def unseal(private: X25519PrivateKey, sealed: str | None) -> str | None:
    """The sealed secret, or None when it is missing or was sealed to another key."""
    if not sealed:
        return None
    try:
        data = _unb64(sealed)
        sender, nonce, body = data[:32], data[32:44], data[44:]
        recipient = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = _kdf(_SEAL_INFO + sender + recipient).derive(private.exchange(X25519PublicKey.from_public_bytes(sender)))
        return AESGCM(key).decrypt(nonce, body, None).decode()
    except (ValueError, TypeError, InvalidTag, UnicodeDecodeError):
        return None
