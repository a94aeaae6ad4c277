"""Opaque cursors for keyset pagination.

A page never uses OFFSET: the cursor holds the sort key of the last row shown, and the next
page starts strictly after it. Rows inserted meanwhile land before the cursor (the newest
tenants, the newest audit events) or after it (a tenant's newer events) and never shift or
repeat rows already shown.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils.dateparse import parse_datetime

from tenants.errors import ErrorCode

from .errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode(kind: str, **values: Any) -> str:
    raw = json.dumps({"k": kind, **values}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, kind: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        data = None
    if not isinstance(data, dict) or data.get("k") != kind:
        raise bad_cursor()
    return data


def bad_cursor() -> ApiError:
    return ApiError(
        422,
        ErrorCode.VALIDATION_ERROR,
        "The cursor is not valid here.",
        {"cursor": ["Use the next_cursor of a previous page of this same list."]},
    )


def tenant_after(cursor: str) -> Q:
    """Tenants after the cursor in newest-first order (created_at, id descending)."""
    data = decode(cursor, "tenants")
    try:
        created = parse_datetime(str(data["c"]))
        tid = uuid.UUID(str(data["i"]))
    except (KeyError, ValueError):
        raise bad_cursor() from None
    if not isinstance(created, datetime) or created.tzinfo is None:
        raise bad_cursor()
    return Q(created_at__lt=created) | Q(created_at=created, id__lt=tid)


def tenant_cursor(created_at: datetime, tenant_id: uuid.UUID) -> str:
    return encode("tenants", c=created_at.isoformat(), i=str(tenant_id))


def schedule_after(cursor: str) -> Q:
    """Schedules after the cursor in soonest-first order (at, id ascending)."""
    data = decode(cursor, "schedules")
    try:
        at = parse_datetime(str(data["a"]))
        sid = uuid.UUID(str(data["i"]))
    except (KeyError, ValueError):
        raise bad_cursor() from None
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise bad_cursor()
    return Q(at__gt=at) | Q(at=at, id__gt=sid)


def schedule_cursor(at: datetime, schedule_id: uuid.UUID) -> str:
    return encode("schedules", a=at.isoformat(), i=str(schedule_id))


def event_after(cursor: str, kind: str) -> int:
    data = decode(cursor, kind)
    value = data.get("i")
    # bool is an int in Python; a cursor never holds one.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise bad_cursor()
    return value


def page(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    """The rows of a page fetched with ``limit + 1``, and whether there is another page."""
    return rows[:limit], len(rows) > limit
