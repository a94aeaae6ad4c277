"""``Idempotency-Key``: the same POST sent twice does its work once.

The first request with a key claims it by inserting a row, in the same transaction as the
operation, and stores the answer there before committing. A second request with that key
either finds the stored answer (and replays it) or, when the first is still in flight, waits
on the row's unique index until the first commits and then replays. Answers to requests that
never reached the operation (401, 403 for CSRF, malformed or invalid bodies) are not stored: the
client can fix the request and send it again with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from tenants.errors import ErrorCode, OperationError

from .auth import caller
from .errors import ApiError, error_body
from .models import IdempotencyRecord

TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255

Answer = tuple[int, dict[str, Any]]


def fingerprint(request: HttpRequest, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            422,
            ErrorCode.VALIDATION_ERROR,
            "The Idempotency-Key header is not valid.",
            {"Idempotency-Key": [f"Use 1 to {MAX_KEY_LENGTH} printable characters."]},
        )
    return key


def run_once(
    request: HttpRequest, *, key: str | None, body: Any, operation: Callable[[], Answer]
) -> tuple[Answer, bool]:
    """Run ``operation`` unless this key already has an answer; return it and whether replayed.

    A refused operation (``OperationError``) is an answer too: asking again with the same key
    gets the same refusal, even if the state has changed since.
    """
    key = check_key(key)
    if key is None:
        return _answer(operation), False
    owner = caller(request).idempotency_owner
    digest = fingerprint(request, body)
    now = timezone.now()
    with transaction.atomic():
        # Keys live for TTL; past that they may be used again, and old rows are swept.
        IdempotencyRecord.objects.filter(created_at__lt=now - TTL).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    owner=owner, key=key, request_hash=digest, status_code=0, body={}
                )
        except IntegrityError:
            # Someone holds the key. On PostgreSQL the insert above waited for that
            # transaction to commit, so its answer is there to read now.
            existing = IdempotencyRecord.objects.get(owner=owner, key=key)
            return _replay(existing, digest), True
        _within_the_cap(owner)
        status, answer = _answer(operation)
        record.status_code = status
        record.body = answer
        record.save(update_fields=["status_code", "body"])
    return (status, answer), False


def _within_the_cap(owner: str) -> None:
    """A caller keeps at most ``CONTROLPLANE_IDEMPOTENCY_KEYS_PER_CALLER`` live keys (issue 23:
    a script kept 2,254 in 25 s, each a stored answer for 24 hours). Checked after the new
    key's row is in, so a replay of a kept key is never refused; raising rolls the row back.
    The old rows were swept just before, so every row counted is live."""
    cap = settings.CONTROLPLANE_IDEMPOTENCY_KEYS_PER_CALLER
    if IdempotencyRecord.objects.filter(owner=owner).order_by()[cap : cap + 1].exists():
        raise ApiError(
            422,
            ErrorCode.IDEMPOTENCY_KEY_LIMIT,
            f"At most {cap} Idempotency-Keys are kept per caller for 24 hours.",
            {
                "Idempotency-Key": [
                    "Send this request without a key, or with a key used in the last 24 hours "
                    "for this same request; new keys are accepted again as the oldest expire."
                ]
            },
        )


def _answer(operation: Callable[[], Answer]) -> Answer:
    try:
        return operation()
    except OperationError as exc:
        return exc.status, error_body(exc.code, exc.message, exc.details)


def _replay(record: IdempotencyRecord, digest: str) -> Answer:
    if record.request_hash != digest:
        raise ApiError(
            422,
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This Idempotency-Key was used with a different request in the last 24 hours.",
            {"Idempotency-Key": ["Use a new key for a different request."]},
        )
    return record.status_code, record.body
