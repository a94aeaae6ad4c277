"""What ``q`` means on every tenant list: slug, name or admin e-mail contains it, any case.

On PostgreSQL three GIN trigram indexes (migration ``0004_tenant_search_trgm``) back the
``UPPER(col::text) LIKE UPPER('%q%')`` that ``icontains`` writes. A trigram index answers
``LIKE`` by intersecting the posting lists of *every* trigram of the pattern, and a trigram
that most rows contain has a posting list as long as the table: at 100,000 tenants named
"Customer N", ``q=customer 4242`` spent 25-40 ms per column decoding the lists of ``CUS``,
``UST`` ... ``MER`` to find 11 rows that `` 4242`` alone finds in under a millisecond.

So where PostgreSQL's own statistics say part of ``q`` is common in a column, the index is
asked for the longest stretch of ``q`` whose three-character pieces are all rare there, and
the whole of ``q`` is checked on the rows it returns (``STRPOS``, which no index serves). Where
no stretch is rare (``q=customer``: most rows match anyway), that column is not offered to the
index at all, so the planner walks the list's own order and stops after a page. The answer is
the same rows whichever form a column gets: a value that contains ``q`` contains every stretch
of it. The statistics only choose the plan, so stale or missing ones cost speed, never
correctness.
"""

from __future__ import annotations

import re
from typing import Any

from django.db import connections
from django.db.models import Q, Value
from django.db.models.functions import StrIndex, Upper
from django.db.models.lookups import GreaterThan

FIELDS = ("slug", "name", "admin_email")
# A piece of text found in more than this share of a column's values is "common" there.
COMMON = 0.05
# pg_trgm makes trigrams from words (runs of letters and digits), padding a word's start with
# blanks: a stretch gives the index something to look up when it holds three letters or
# digits in a row, or a word's start and two more ("r 42" yields "  4" and " 42").
_WORDY = re.compile(r"[^\W_]{3}|[\W_][^\W_]{2}")

Sample = list[tuple[str, float]]  # (upper-cased value, share of the column it stands for)


def text_match(q: str, using: str = "default") -> Q:
    """The filter for ``q`` (already cleaned): one ``OR`` arm per column."""
    samples = column_samples(using)
    match = Q()
    for field in FIELDS:
        part = rare_part(q, samples.get(field, []))
        contains_q = Q(GreaterThan(StrIndex(Upper(field), Upper(Value(q))), 0))
        if part == q:  # nothing common in q (or nothing known): the index reads rare lists
            arm = Q(**{f"{field}__icontains": q})
        elif part:  # the index finds the rare stretch, the rows it returns are checked
            arm = Q(**{f"{field}__icontains": part}) & contains_q
        else:  # nothing rare for the index to look up: no index, many rows will match
            arm = contains_q
        match |= arm
    return match


def column_samples(using: str = "default") -> dict[str, Sample]:
    """Each search column's values as ANALYZE sampled them for the planner (most common
    values with their shares, histogram bounds sharing the rest): about 100 a column, one
    query. Empty for a column never analysed."""
    indexes = {f"tenant_{field}_trgm": field for field in FIELDS}
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT tablename, most_common_vals::text::text[], most_common_freqs, "
            "histogram_bounds::text::text[] FROM pg_stats "
            "WHERE schemaname = current_schema() AND tablename = ANY(%s)",
            [list(indexes)],
        )
        rows: list[tuple[Any, ...]] = cursor.fetchall()
    samples: dict[str, Sample] = {}
    for index, common, freqs, bounds in rows:
        sample: Sample = list(zip(common or [], freqs or [], strict=False))
        if bounds:
            rest = max(0.0, 1.0 - sum(freqs or [])) / len(bounds)
            sample += [(value, rest) for value in bounds]
        samples[indexes[index]] = sample
    return samples


def rare_part(q: str, sample: Sample) -> str:
    """The longest stretch of ``q`` none of whose three-character pieces is common in
    ``sample``: ``q`` itself when nothing in it is common (or nothing is known), ``""`` when
    no stretch is both rare and something the index can look up (three letters or digits in
    a row)."""
    upper = q.upper()
    if not sample or len(q) < 3 or len(upper) != len(q):
        return q  # nothing known, too short to have trigrams, or case folding changes lengths
    rare = [
        sum(share for value, share in sample if upper[i : i + 3] in value) <= COMMON
        for i in range(len(q) - 2)
    ]
    best_start, best_len = 0, 0  # in pieces
    start = None
    for i, ok in enumerate([*rare, False]):
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = None
    part = q[best_start : best_start + best_len + 2] if best_len else ""
    if part != q and not _WORDY.search(part):
        return ""
    return part
