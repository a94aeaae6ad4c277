"""A cursor whose statements PostgreSQL plans once a connection, for the hot reads and writes.

Django turns psycopg's prepared statements off (``prepare_threshold=None``, for connection
poolers) and binds parameters on the client, so PostgreSQL parses and plans every statement on
every execution. For the few hand-written statements on hot paths (the detail read, the
session read, the saga's step statements) planning cost more than running: the detail's
statement planned in 0.7-1.0 ms and ran in 0.3-0.6 ms (docs/performance.md, "Results of
this release"). ``prepared_cursor()`` is Django's cursor (its wrapper, so query counts, logging
and error translation stay Django's) over a psycopg cursor that binds on the server and
prepares every statement it executes: planned on its first execution on a connection, then
reused (psycopg keeps the 100 most recent per connection).

``DATABASE_PREPARED_STATEMENTS=0`` turns it off (a cursor like any other): for a connection
pooler in transaction mode that does not keep prepared statements (PgBouncer before 1.21, or
without ``max_prepared_statements``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from django.db.backends.utils import CursorWrapper

_NEVER_BY_COUNT = 2**31 - 1


class _PreparingCursor(psycopg.Cursor[Any]):
    """psycopg's server-binding cursor, preparing every statement it executes."""

    # Set when Django logs queries (DEBUG, the tests' query budgets): Django reads an executed
    # statement's text from the cursor's ``_query``, which psycopg leaves unset when it runs a
    # prepared statement.
    keep_query = False

    def execute(  # type: ignore[override]
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool = False
    ) -> _PreparingCursor:
        super().execute(query, params, prepare=True if prepare is None else prepare, binary=binary)
        if self.keep_query:
            self._query = self._convert_query(query, params)
        return self


@contextmanager
def prepared_cursor() -> Iterator[CursorWrapper]:
    """A cursor of the default connection whose statements are prepared (see the module)."""
    if not settings.DATABASE_PREPARED_STATEMENTS:
        with connection.cursor() as cursor:
            yield cursor
        return
    # What Django's connection.cursor() does, with our psycopg cursor in place of its own.
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    raw = connection.connection
    if raw.prepare_threshold is None:
        # Django's None turns every preparing off, an explicit ``prepare=True`` included; a
        # threshold no statement reaches prepares what asks to be and nothing else (Django's
        # own cursors bind on the client, which never prepares).
        raw.prepare_threshold = _NEVER_BY_COUNT
    cursor = _PreparingCursor(raw)
    cursor.keep_query = connection.queries_logged
    with connection.wrap_database_errors:
        wrapped = connection._prepare_cursor(cursor)
    with wrapped as opened:
        yield opened
