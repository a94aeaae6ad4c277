"""The tenant search (``q``: slug, name or e-mail contains) can use the trigram indexes."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.models import Q

from tenants.models import Tenant

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_trgm is PostgreSQL's"),
]


def test_the_search_filter_is_served_by_the_trigram_indexes():
    q = "customer 4242"
    qs = Tenant.objects.order_by().filter(
        Q(slug__icontains=q) | Q(name__icontains=q) | Q(admin_email__icontains=q)
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # An empty test table is cheaper to scan: forbid scans (sequential, or walking another
        # index) to see what the trigram indexes serve (bitmap index scans).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = qs.explain()
    for column in ("slug", "name", "admin_email"):
        assert f"tenant_{column}_trgm" in plan, plan
