"""Adding to and reading the counters kept in ``Tally`` rows."""

from __future__ import annotations

from django.db import connection

from .models import Tally

LOGINS_REFUSED = "logins_refused"


def add(name: str, n: int = 1) -> None:
    """One upsert statement; concurrent increments from any process all count (the row lock
    of ON CONFLICT DO UPDATE serialises them)."""
    table = Tally._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (name, value) VALUES (%s, %s) "  # noqa: S608 - our table name
            f"ON CONFLICT (name) DO UPDATE SET value = {table}.value + EXCLUDED.value",
            [name, n],
        )


def value(name: str) -> int:
    return Tally.objects.filter(name=name).values_list("value", flat=True).first() or 0
