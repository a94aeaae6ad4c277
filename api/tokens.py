"""Issuing, finding and revoking API tokens: what the command, the admin and the auth share."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.recent import RecentlyFound

from .models import ApiToken

# Marks a string as one of our tokens (and lets secret scanners spot a leaked one).
TOKEN_PREFIX = "cpt_"  # noqa: S105 - a label, not a secret
# Writing last_used_at on every request would turn every read into a write; a minute is
# precise enough to tell a live token from a forgotten one.
LAST_USED_GRANULARITY = timedelta(minutes=1)
MAX_NAME_LENGTH = 100
MAX_EXPIRY_DAYS = 3650


class TokenError(Exception):
    """A token could not be issued or revoked; the message is for people."""


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable() or " " in name:
        raise TokenError(
            f"A token name has 1 to {MAX_NAME_LENGTH} characters and no spaces "
            "(it is recorded in the audit feed as token:<name>)."
        )
    return name


def issue_token(*, user: Any, name: str, expires_days: int | None = None) -> tuple[ApiToken, str]:
    """Make a token for ``user`` and return it with its secret, which is never stored.

    Every token expires: after ``expires_days``, or CONTROLPLANE_API_TOKEN_DAYS (90) when not
    given. A forgotten token stops working on its own.
    """
    name = check_name(name)
    if expires_days is None:
        expires_days = settings.CONTROLPLANE_API_TOKEN_DAYS
    if isinstance(expires_days, bool) or not 1 <= expires_days <= MAX_EXPIRY_DAYS:
        raise TokenError(
            f"--expires-in is a number of days, at least 1 and at most {MAX_EXPIRY_DAYS}."
        )
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(days=expires_days)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                name=name,
                user=user,
                prefix=raw[: len(TOKEN_PREFIX) + 6],
                token_hash=hash_token(raw),
                expires_at=expires_at,
            )
    except IntegrityError:
        raise TokenError(
            f"A token named {name!r} already exists (names are never reused, revoked "
            "tokens included)."
        ) from None
    return token, raw


def revoke_token(*, name: str) -> ApiToken:
    token = ApiToken.objects.filter(name=name).first()
    if token is None:
        raise TokenError(f"No token is named {name!r}.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


# Tokens found in the last CONTROLPLANE_AUTH_CACHE_SECONDS, in this process, with their user
# and its permission set (controlplane.recent says the price; api.apps empties it on a change).
recent_tokens: RecentlyFound[str, ApiToken] = RecentlyFound()


def authenticate_token(raw: str) -> ApiToken | None:
    """The usable token whose secret is ``raw`` (with its user loaded), or None.

    Looked up on every request unless this process found it less than
    ``CONTROLPLANE_AUTH_CACHE_SECONDS`` ago (``recent_tokens``), so a revocation or expiry
    takes effect within that time. ``last_used_at`` is written at most once a minute per token
    (a conditional UPDATE), so a busy client does not turn every read into a write.
    """
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    token_hash = hash_token(raw)
    cached = recent_tokens.get(token_hash)
    if cached is not None and cached.is_usable:
        return cached
    token = ApiToken.objects.select_related("user").filter(token_hash=token_hash).first()
    if token is None or not token.is_usable or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        # Conditional: of several requests racing past the check, one writes.
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_GRANULARITY)
        ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    recent_tokens.put(token_hash, token)
    return token
