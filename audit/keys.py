"""The audit chain's keys: what makes ``audit verify`` mean something against whoever owns the
database (docs/security.md, "The audit chain: what it proves").

One secret, the *audit key*, is read from ``CONTROLPLANE_AUDIT_KEY`` (or ``_FILE``); unset, it is
derived from ``SECRET_KEY``, which is never in the database either. Two keys are derived from it,
for two purposes:

- the **chain key**, HMAC-SHA256 key of every event's digest. The digest is computed by
  PostgreSQL inside the append statement (``audit.services``), so the chain key travels to the
  server as a parameter of that statement (as its HMAC pads); it is never stored there.
- the **checkpoint key**, which signs the checkpoints of the chain heads written outside the
  database (the JSON log, the ``audit.checkpoint`` webhook). It never leaves this process: even
  a database owner who recorded the statements' parameters, and so learned the chain key, cannot
  forge a checkpoint, and a checkpoint pins the chain as it was.

Each event records the *key id* of the audit key it was chained with (a fingerprint of the key,
not the key), so keys can rotate: the new key in ``CONTROLPLANE_AUDIT_KEY``, the old ones in
``CONTROLPLANE_AUDIT_RETIRED_KEYS`` (verification only). Keys derived from ``SECRET_KEY`` follow
Django's own rotation: ``SECRET_KEY_FALLBACKS`` are retired audit keys too.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings

# SHA-256's block size: HMAC's pads are one block.
BLOCK = 64
# The key id of the events chained before keys existed (plain SHA-256, no secret).
UNKEYED = ""
# The development SECRET_KEY (controlplane/settings.py): public, so its audit key proves nothing.
DEVELOPMENT_SECRET_KEY = "django-insecure-embedded-default-do-not-use-in-production"  # noqa: S105


@dataclass(frozen=True)
class AuditKey:
    key_id: str
    chain_key: bytes
    checkpoint_key: bytes
    # Derived from a key anyone can read (the development SECRET_KEY): proves nothing.
    development: bool

    @functools.cached_property
    def pads(self) -> tuple[bytes, bytes]:
        """HMAC's inner and outer pads of the chain key: HMAC(k, m) is
        sha256(opad || sha256(ipad || m)), which PostgreSQL's built-in sha256() computes without
        pgcrypto."""
        key = self.chain_key.ljust(BLOCK, b"\0")
        return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)

    def chain_digest(self, message: str) -> str:
        return hmac.new(self.chain_key, message.encode(), hashlib.sha256).hexdigest()

    def sign(self, payload: bytes) -> str:
        return hmac.new(self.checkpoint_key, payload, hashlib.sha256).hexdigest()


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


@functools.lru_cache(maxsize=32)
def _key(secret: str, *, from_secret_key: bool) -> AuditKey:
    raw = secret.encode()
    if from_secret_key:
        raw = _derive(raw, "controlplane audit key from SECRET_KEY")
    key_id = ("dev-" if secret == DEVELOPMENT_SECRET_KEY else "") + _derive(
        raw, "controlplane audit key id"
    ).hex()[:12]
    return AuditKey(
        key_id=key_id,
        chain_key=_derive(raw, "controlplane audit chain v1"),
        checkpoint_key=_derive(raw, "controlplane audit checkpoint v1"),
        development=secret == DEVELOPMENT_SECRET_KEY,
    )


def current_key() -> AuditKey:
    """The key new events are chained with and checkpoints are signed with."""
    configured = getattr(settings, "CONTROLPLANE_AUDIT_KEY", "")
    if configured:
        return _key(configured, from_secret_key=False)
    return _key(settings.SECRET_KEY, from_secret_key=True)


def known_keys() -> dict[str, AuditKey]:
    """Every key verification may meet, by key id: the current one and the retired ones."""
    keys = [current_key()]
    keys += [
        _key(k, from_secret_key=False)
        for k in getattr(settings, "CONTROLPLANE_AUDIT_RETIRED_KEYS", [])
    ]
    keys += [_key(k, from_secret_key=True) for k in [settings.SECRET_KEY]]
    keys += [_key(k, from_secret_key=True) for k in getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return {k.key_id: k for k in keys}


def unkeyed_digest(message: str) -> str:
    """How events were chained before keys: anyone can recompute it."""
    return hashlib.sha256(message.encode()).hexdigest()
