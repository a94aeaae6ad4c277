"""Reconciliation with real resources: directories, schemas, groups and records made or
removed by hand, found by ``manage.py reconcile``, the periodic task and the tenant page."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection

from audit.models import Event
from provisioning import reconcile
from provisioning.models import Allocation, DnsRecord, ResourceFinding
from provisioning.providers import get_provider
from provisioning.providers.base import TenantSpec
from provisioning.tasks import run_reconciliation
from tenants.selectors import tenant_detail

from ..factories import active_tenant, new_tenant, pending_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def clean(fast_saga: Any) -> Any:
    """No stray schema of an earlier (flushed) test in view; rolled back with the test."""
    for _, name in get_provider("database").inventory():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{name}" CASCADE')
    return fast_saga


def spec(tenant: Any) -> TenantSpec:
    return TenantSpec(tenant.id, tenant.slug, tenant.name, tenant.plan, tenant.admin_email)


def run_command(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except CommandError as exc:
        return exc.returncode, out.getvalue()
    return 0, out.getvalue()


def leak_everything(tenant: Any) -> dict[str, str]:
    """What a killed worker would leave: every kind made for the tenant, nothing on the ledger."""
    return {kind: get_provider(kind).allocate(spec(tenant)) for kind in reconcile.KINDS}


def test_a_clean_ledger_has_no_findings(clean: Any):
    active_tenant()
    assert reconcile.find_drift() == []
    assert run_command() == (
        0,
        "The ledger matches the providers: nothing leaked, nothing missing.\n",
    )


def test_leaked_resources_made_by_hand_are_found_and_fixed(clean: Any):
    tenant = pending_tenant()
    made = leak_everything(tenant)
    assert Path(made["storage"]).is_dir() and Group.objects.filter(name=made["identity"]).exists()

    findings = reconcile.find_drift()
    assert {(f.problem, f.kind, f.external_id) for f in findings} == {
        ("leaked", kind, external_id) for kind, external_id in made.items()
    }
    assert {f.tenant_id for f in findings} == {tenant.id}

    code, out = run_command()
    assert code == 1
    assert "6 leaked, 0 missing" in out and made["storage"] in out

    code, out = run_command("--fix")
    assert code == 1 and out.count("released ") == 6
    for kind, external_id in made.items():
        assert not get_provider(kind).exists(external_id), kind
    assert run_command()[0] == 0
    released = Event.objects.filter(tenant_id=tenant.id, type="tenant.resource.released")
    assert {e.data["kind"] for e in released} == set(made)


def test_missing_resources_are_found_and_marked_released_with_an_error(clean: Any):
    tenant = active_tenant()
    held = {a.kind: a for a in Allocation.objects.filter(tenant=tenant, released_at=None)}
    shutil.rmtree(held["storage"].external_id)
    get_provider("database").release(tenant.id, held["database"].external_id)
    DnsRecord.objects.filter(tenant_id=tenant.id).delete()

    code, out = run_command("--json")
    doc = json.loads(out)
    assert code == 1
    assert {(f["problem"], f["kind"]) for f in doc["findings"]} == {
        ("missing", "storage"),
        ("missing", "database"),
        ("missing", "dns"),
    }

    code, out = run_command("--fix", "--json")
    assert len(json.loads(out)["fixed"]["marked_missing"]) == 3
    for kind in ("storage", "database", "dns"):
        row = Allocation.objects.get(pk=held[kind].pk)
        assert row.released_at is not None and "missing" in row.release_error
    assert Allocation.objects.filter(tenant=tenant, released_at=None).count() == 3
    assert run_command()[0] == 0


def test_a_resource_in_flight_is_covered_by_its_open_intent(clean: Any):
    tenant = new_tenant()  # provisioning; allocate_storage not yet run
    from provisioning import ledger

    ledger.open_intent(tenant_id=tenant.id, kind="storage", run_id=tenant.workflow_id)
    get_provider("storage").allocate(spec(tenant))
    assert reconcile.find_drift() == []


def test_a_leak_with_no_known_tenant_is_listed_and_not_released(clean: Any):
    stray = Path(clean.CONTROLPLANE_DATA_ROOT) / "tenants" / "not-a-tenant"
    stray.mkdir(parents=True)
    code, out = run_command("--fix")
    assert code == 1 and "no known tenant" in out and "not fixed" in out
    assert stray.is_dir()


def test_the_periodic_task_records_each_finding_once_and_resolves_it(clean: Any):
    tenant = active_tenant()
    storage = Allocation.objects.get(tenant=tenant, kind="storage", released_at=None)
    shutil.rmtree(storage.external_id)
    other = pending_tenant()
    group = get_provider("identity").allocate(spec(other))

    for _ in range(3):
        result = run_reconciliation()
    assert result == {"leaked": 1, "missing": 1, "new": 0}
    missing = Event.objects.filter(type="tenant.resource.missing")
    leaked = Event.objects.filter(type="tenant.resource.leaked")
    assert [(e.tenant_id, e.data) for e in missing] == [
        (tenant.id, {"kind": "storage", "external_id": storage.external_id})
    ]
    assert [(e.tenant_id, e.data) for e in leaked] == [
        (other.id, {"kind": "identity", "external_id": group})
    ]

    # The tenant page shows the drift.
    detail = tenant_detail(tenant.id)
    assert [(f.problem, f.kind) for f in detail.drift] == [("missing", "storage")]

    # It goes away (the group removed by hand): the finding is resolved, not recorded again.
    get_provider("identity").release(other.id, group)
    run_reconciliation()
    assert ResourceFinding.objects.get(kind="identity").resolution == "no longer found"
    assert tenant_detail(other.id).drift == []
    run_reconciliation()
    assert Event.objects.filter(type="tenant.resource.leaked").count() == 1


def test_the_tenant_page_shows_drift(clean: Any, client: Any, operator: Any):
    tenant = active_tenant()
    storage = Allocation.objects.get(tenant=tenant, kind="storage", released_at=None)
    shutil.rmtree(storage.external_id)
    client.force_login(operator)
    page = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert 'id="drift"' not in page
    run_reconciliation()
    page = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert 'id="drift"' in page and storage.external_id in page


def test_the_reconcile_task_is_on_the_beat_schedule(settings: Any):
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile"]
    assert entry["task"] == "provisioning.reconcile"
    assert entry["schedule"] == settings.CONTROLPLANE_RECONCILE_INTERVAL == 300


def test_findings_are_listed_read_only_in_the_admin(clean: Any, client: Any):
    from django.contrib.auth.models import User

    tenant = active_tenant()
    shutil.rmtree(Allocation.objects.get(tenant=tenant, kind="storage").external_id)
    run_reconciliation()
    client.force_login(User.objects.create_superuser("root", "r@example.test", "pw"))
    page = client.get("/admin/provisioning/resourcefinding/")
    assert page.status_code == 200 and "missing" in page.content.decode()
    assert client.get("/admin/provisioning/resourcefinding/add/").status_code == 403
