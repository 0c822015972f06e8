"""Sealing a secret for another service, and a keyed hash to check it without keeping it.

The delivery code is the one such secret today: shipping seals it into the events the notifier
reads (so the notifier can send it to the customer) and keeps only a keyed hash to check what
the agent types. Both services derive their keys from the same configured secret
(``WAYBILL_DELIVERY_CODE_KEYS``), so nothing but the two of them can read or forge a code: not
Kafka, not the monitor's copy of every event, not a webhook receiver.

Fernet (``cryptography``) seals: authenticated encryption with versioned tokens and a ready
rotation story (``MultiFernet``: the first key seals, every key unseals). The keyed hash is
HMAC-SHA256 under a separate key derived from the first secret, salted with the shipment id, so
equal codes of two shipments do not hash alike. A 6-digit code has only a million values:
the hash is safe only because its key is secret, which is why it is keyed at all.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SealBroken(ValueError):
    """The token was not sealed with any configured key, or was altered."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


class Sealer:
    def __init__(self, secrets: str | list[str]) -> None:
        keys = [s.strip() for s in (secrets.split(",") if isinstance(secrets, str) else secrets)]
        keys = [k for k in keys if k]
        if not keys:
            raise ValueError("at least one sealing secret is needed")
        self._fernet = MultiFernet(
            [Fernet(base64.urlsafe_b64encode(_derive(k, b"waybill seal v1"))) for k in keys]
        )
        self._hash_key = _derive(keys[0], b"waybill keyed hash v1")

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def unseal(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, ValueError) as exc:
            raise SealBroken("token not sealed with a configured key") from exc

    def keyed_hash(self, value: str, *, salt: str) -> str:
        message = salt.encode() + b"\x00" + value.encode()
        return hmac.new(self._hash_key, message, hashlib.sha256).hexdigest()
