"""Django's database sessions, read with one plain statement.

The store is Django's own (``django.contrib.sessions.backends.db``): the same table, the same
writes, the same expiry. Only the read on every request is a hand-written ``SELECT`` of the one
column it needs instead of a queryset: building and running that queryset and making its
instance was two thirds of the session's cost on a console page (docs/performance.md,
"The reads' cuts").
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.backends import db
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.utils import timezone

from .prepared import prepared_cursor


class SessionStore(db.SessionStore):
    def load(self) -> dict[str, Any]:
        data = self._read_data()
        return self.decode(data) if data is not None else {}

    def _read_data(self) -> str | None:
        """The session's data while it has not expired; None (and no key: a new session is
        made if one is saved) when there is no such session."""
        if self.session_key is None:
            return None
        meta = self.model._meta
        using = router.db_for_read(self.model)
        # Prepared where it can be (the default database): planned once a connection.
        opened = prepared_cursor() if using == DEFAULT_DB_ALIAS else connections[using].cursor()
        with opened as cursor:
            cursor.execute(
                f"SELECT {meta.get_field('session_data').column} FROM {meta.db_table} "  # noqa: S608 (names from _meta)
                f"WHERE {meta.get_field('session_key').column} = %s "
                f"AND {meta.get_field('expire_date').column} > %s",
                [self.session_key, timezone.now()],
            )
            row = cursor.fetchone()
        if row is None:
            self._session_key = None
            return None
        return row[0]  # type: ignore[no-any-return]
