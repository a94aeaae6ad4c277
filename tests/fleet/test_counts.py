"""The fleet's counts (the list's state chips, its total and its "Needs attention N") stay exact
through every change a tenant goes through, and on PostgreSQL they are read without reading
the tenant table (``tenants.models.TenantCount``, deltas written by triggers)."""

from __future__ import annotations

import re

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from provisioning import compensation
from tenants import models as tenant_models
from tenants import selectors
from tenants.models import IN_FLIGHT, NEEDS_ATTENTION, Tenant, TenantCount
from tenants.services import (
    decommission_tenant,
    resume_tenant,
    retry_provisioning,
    suspend_tenant,
)

from .. import factories as f
from ..console.conftest import login

pytestmark = pytest.mark.django_db


def truth() -> dict[tuple[str, str], int]:
    """What the counts must say: the tenants themselves, grouped."""
    rows = Tenant.objects.order_by().values_list("state", "condition").annotate(n=Count("pk"))
    return {(state, condition): n for state, condition, n in rows}


def assert_exact(step: str) -> None:
    expected = truth()
    with CaptureQueriesContext(connection) as queries:
        counts = selectors.fleet_counts()
    assert TenantCount.objects.totals() == expected, step
    for state, n in counts.by_state.items():
        assert n == sum(v for (s, _), v in expected.items() if s == state), (step, state)
    for condition, n in counts.by_condition.items():
        assert n == sum(v for (_, c), v in expected.items() if c == condition), (step, condition)
    assert counts.total == Tenant.objects.count(), step
    assert counts.needs_attention == Tenant.objects.filter(condition__in=NEEDS_ATTENTION).count()
    assert counts.in_flight == Tenant.objects.filter(condition__in=IN_FLIGHT).exists(), step
    assert len(queries) == 1, step
    # The point of the cache: the read never touches the tenant table.
    assert '"tenants_tenant"' not in queries.captured_queries[0]["sql"], step


def test_counts_stay_exact_through_every_change(fast_saga, monkeypatch):
    assert_exact("empty fleet")
    # Every situation an operator meets, each built through the services: create (pending or
    # straight to provisioning), the saga's steps, a failure and its rollback, a cancel, a
    # stall flagged by the watchdog, a release that fails, suspend, decommission.
    made = {}
    for name, make in f.SITUATIONS.items():
        made[name] = make(fast_saga)
        assert_exact(name)

    # Further moves of tenants that exist.
    resume_tenant(tenant_id=made["suspended"].id, actor=f.ACTOR)
    assert_exact("resume")
    retried = retry_provisioning(tenant_id=made["failed"].id, actor=f.ACTOR)
    assert_exact("retry of a failed tenant")
    f.drive(retried.workflow_id)
    assert_exact("the retry's run to active")
    decommission_tenant(tenant_id=made["active"].id, actor=f.ACTOR)
    assert_exact("decommission asked")
    compensation.decommission_tenant(made["active"].id)
    assert_exact("decommission done")

    # A change rolled back leaves no trace in the counts.
    with pytest.raises(RuntimeError), transaction.atomic():
        suspend_tenant(tenant_id=f.active_tenant().id, actor=f.ACTOR)
        raise RuntimeError("rolled back")
    assert_exact("a rolled-back suspend (and the creation in the same transaction)")

    # Writes that bypass the services: many rows in one statement, a queryset update, deletes.
    Tenant.objects.bulk_create(
        Tenant(slug=f"bulk-{i:03d}", name="Bulk", plan="growth", admin_email="b@x.test")
        for i in range(30)
    )
    assert_exact("bulk insert")
    Tenant.objects.filter(slug__startswith="bulk-0").update(condition="failed")
    assert_exact("a queryset update of the condition")
    Tenant.objects.filter(slug__startswith="bulk-0").update(name="Renamed")
    assert_exact("an update that moves nothing")
    Tenant.objects.filter(slug__startswith="bulk-").delete()
    assert_exact("delete")

    # Folding the deltas changes no total and leaves one row per (state, condition).
    before = TenantCount.objects.totals()
    monkeypatch.setattr(tenant_models, "COMPACT_AFTER", 0)
    TenantCount.objects.compact()
    assert TenantCount.objects.totals() == before
    assert_exact("after compaction")
    assert TenantCount.objects.count() == len(before)


def test_the_attention_chip_counts_exactly_and_follows_changes(fast_saga, client, viewer):
    failed = f.failed_tenant()
    f.stalled_tenant(fast_saga)
    f.active_tenant()
    login(client, viewer)

    def chip() -> int:
        body = client.get("/tenants/").content.decode()
        return int(re.search(r'data-attention-count="(\d+)"', body).group(1))

    assert chip() == 2
    decommission_tenant(tenant_id=failed.id, actor=f.ACTOR)
    compensation.decommission_tenant(failed.id)
    assert chip() == 1


def test_the_watchdog_pass_folds_the_deltas(fast_saga, monkeypatch):
    from provisioning.tasks import run_watchdog

    for _ in range(3):
        f.suspended_tenant()
    before = TenantCount.objects.totals()
    monkeypatch.setattr(tenant_models, "COMPACT_AFTER", 0)
    run_watchdog()
    assert TenantCount.objects.totals() == before == truth()
    assert TenantCount.objects.count() == len(before)
