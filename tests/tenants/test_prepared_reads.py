"""The hot reads' statements are prepared once a connection (controlplane.prepared), and the
query log still sees them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.detail_read import read_detail

from ..factories import active_tenant

pytestmark = pytest.mark.django_db


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


def test_the_detail_read_is_planned_once_and_logged_every_time() -> None:
    tenant = active_tenant()
    before = [s for s in _prepared() if "row_to_json" in s]
    with CaptureQueriesContext(connection) as queries:
        first = read_detail(tenant.id, events=5)
        again = read_detail(tenant.id, events=5)
    assert first is not None and again is not None
    assert first.tenant.pk == again.tenant.pk == tenant.pk
    assert len(queries.captured_queries) == 2
    assert all("row_to_json" in q["sql"] for q in queries.captured_queries)
    after = [s for s in _prepared() if "row_to_json" in s]
    assert len(after) == len(before) + 1  # one prepared statement, used twice


def test_turned_off_nothing_is_prepared(settings) -> None:
    settings.DATABASE_PREPARED_STATEMENTS = False
    tenant = active_tenant()
    before = _prepared()
    rows = read_detail(tenant.id, events=5, history=True)
    assert rows is not None and rows.tenant.pk == tenant.pk
    assert _prepared() == before
