"""Keyset (cursor) pagination: a page is "the next N rows after this key", never an OFFSET.

An OFFSET makes the database walk and throw away every earlier row, so page 2,000 of 100,000
tenants costs as much as reading them all. A keyset page is one index range scan whatever
page it is. The cursor is opaque to the user: the sort key of the row at the page's edge and
the direction, base64-encoded JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None
    prev_cursor: str | None

    @property
    def has_other_pages(self) -> bool:
        return bool(self.next_cursor or self.prev_cursor)


def encode_cursor(values: list[Any], direction: str) -> str:
    raw = json.dumps({"k": [_plain(v) for v in values], "d": direction}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which no cursor of ours holds (issue 23: an
    # Infinity reached int() in to_python and answered 500 with an OverflowError).
    raise ValueError(f"{name} in a cursor")


def _plain_key_value(value: Any) -> bool:
    """A value encode_cursor could have written and PostgreSQL can compare with."""
    if value is None:
        return True
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    # PostgreSQL text cannot hold NUL: the driver would raise at query time.
    return isinstance(value, str) and "\x00" not in value and len(value) <= 1000


def decode_cursor(cursor: str | None) -> tuple[list[Any], str] | None:
    """The key and direction a cursor names, or None for a missing or tampered cursor.

    A tampered cursor shows the first page (tests/console/test_list.py): it never reaches the
    database with a value the database cannot take (NUL, a number out of range, Infinity).
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(
            base64.urlsafe_b64decode(padded.encode("ascii")), parse_constant=_refuse_constant
        )
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        return None
    if (
        not isinstance(data, dict)
        or data.get("d") not in ("next", "prev")
        or not isinstance(data.get("k"), list)
        or not all(_plain_key_value(v) for v in data["k"])
    ):
        return None
    return data["k"], data["d"]


def _plain(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, int | float | str) or value is None:
        return value
    return str(value)


def _after(fields: list[str], values: list[Any], descending: bool) -> Q:
    """Rows strictly after ``values`` in the order of ``fields`` (a row-value comparison)."""
    op = "lt" if descending else "gt"
    q = Q()
    for i in range(len(fields) - 1, -1, -1):
        here = Q(**{f"{fields[i]}__{op}": values[i]})
        equal = Q(**{fields[j]: values[j] for j in range(i)})
        q = (equal & here) | q if q else equal & here
    return q


def keyset_page(
    qs: QuerySet[Any],
    *,
    field: str,
    descending: bool,
    cursor: str | None,
    limit: int,
) -> Page:
    """One page of ``qs`` ordered by ``field`` (then ``pk`` to break ties) after ``cursor``.

    Reads ``limit + 1`` rows: the extra one only says whether there is a further page, so no
    COUNT over the whole table is ever needed.
    """
    model: type[Model] = qs.model
    pk = model._meta.pk.attname
    fields = [field] if field == pk else [field, pk]
    decoded = decode_cursor(cursor)
    key: list[Any] | None = None
    direction = "next"
    if decoded is not None and len(decoded[0]) == len(fields):
        try:
            pairs = zip(fields, decoded[0], strict=True)
            key = [model._meta.get_field(f).to_python(v) for f, v in pairs]
            direction = decoded[1]
            # A float as big as 1e308 becomes an int no bigint column can compare with.
            if not all(_plain_key_value(v) for v in key if isinstance(v, int | float)):
                key = None
        except (ValidationError, TypeError, ValueError, OverflowError):
            key = None
    # A "prev" page is read backwards from its key, then turned round.
    backwards = direction == "prev" and key is not None
    read_desc = descending != backwards
    order = [f"-{f}" if read_desc else f for f in fields]
    if key is not None:
        qs = qs.filter(_after(fields, key, read_desc))
    rows = list(qs.order_by(*order)[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()

    def key_of(row: Any) -> list[Any]:
        return [getattr(row, f) for f in fields]

    next_cursor = prev_cursor = None
    if rows:
        if (not backwards and more) or backwards:
            next_cursor = encode_cursor(key_of(rows[-1]), "next")
        if (backwards and more) or (not backwards and key is not None):
            prev_cursor = encode_cursor(key_of(rows[0]), "prev")
    return Page(items=rows, next_cursor=next_cursor, prev_cursor=prev_cursor)


def first_page(rows: list[Any], *, field: str, limit: int) -> Page:
    """The first page ``keyset_page`` would give, of rows already read in its order, one more
    than ``limit`` when there are (``field`` being the primary key: no tie to break)."""
    items = rows[:limit]
    more = len(rows) > limit
    next_cursor = encode_cursor([getattr(items[-1], field)], "next") if items and more else None
    return Page(items=items, next_cursor=next_cursor, prev_cursor=None)
