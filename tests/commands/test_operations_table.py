"""``manage.py tenant``: --reason, --dry-run, bulk (preview unless --yes), approve / withdraw."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import Event
from tenants.models import Tenant
from tests import factories as f

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenant", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_reason_is_recorded(fast_saga):
    tenant = f.active_tenant()
    run("suspend", tenant.slug, "--reason", "abuse report 17", "--actor", "bob")
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.suspended")
    assert (event.actor, event.data["reason"]) == ("user:bob", "abuse report 17")


def test_a_bad_reason_is_refused_in_one_line(fast_saga):
    tenant = f.active_tenant()
    with pytest.raises(CommandError) as refused:
        run("suspend", tenant.slug, "--reason", "x" * 501)
    assert "at most 500 characters" in str(refused.value)
    assert Tenant.objects.get(pk=tenant.id).state == "active"


def test_dry_run_prints_the_preview_and_writes_nothing(fast_saga):
    tenant = f.active_tenant()
    with CaptureQueriesContext(connection) as queries:
        out = run("decommission", tenant.slug, "--dry-run")
    assert not [q for q in queries.captured_queries if q["sql"].startswith(("INSERT", "UPDATE"))]
    assert "active → decommissioned; releases 6, keeps 0." in out
    assert "  release  storage" in out
    assert "Nothing was changed." in out
    data = json.loads(run("suspend", tenant.slug, "--dry-run", "--json"))
    assert data["to_state"] == "suspended" and len(data["keep"]) == 6
    assert Tenant.objects.get(pk=tenant.id).decommission_requested_at is None


def test_dry_run_refuses_like_the_operation(fast_saga):
    tenant = f.active_tenant()
    with pytest.raises(CommandError) as refused:
        run("resume", tenant.slug, "--dry-run")
    assert "Resume applies to suspended tenants only" in str(refused.value)


def test_bulk_previews_without_yes_and_acts_with_it(fast_saga):
    a, b = f.active_tenant(), f.active_tenant()
    f.pending_tenant()
    out = run("bulk", "suspend", "--state", "active")
    assert "would_accept" in out and "Nothing was changed; add --yes to do it." in out
    assert Tenant.objects.filter(state="suspended").count() == 0
    out = run("bulk", "suspend", "--state", "active", "--yes", "--reason", "freeze")
    assert "Suspend: accepted for 2, refused for 0 of 2 matched." in out
    assert set(Tenant.objects.filter(pk__in=[a.id, b.id]).values_list("state", flat=True)) == {
        "suspended"
    }
    assert set(
        Event.objects.filter(type="tenant.suspended").values_list("data__reason", flat=True)
    ) == {"freeze"}


def test_bulk_json_and_refusals_exit_non_zero(fast_saga):
    f.active_tenant()
    data = json.loads(run("bulk", "resume", "--state", "active", "--json"))
    assert data["dry_run"] is True
    assert [r["outcome"] for r in data["results"]] == ["refused"]
    with pytest.raises(CommandError) as refused:
        run("bulk", "resume", "--state", "active", "--yes")
    assert refused.value.returncode == 2


def test_bulk_needs_a_filter_and_a_sane_limit(fast_saga):
    with pytest.raises(CommandError) as nothing:
        run("bulk", "suspend")
    assert "at least one filter" in str(nothing.value)
    with pytest.raises(CommandError) as limit:
        run("bulk", "suspend", "--state", "active", "--limit", "5000")
    assert "limit must be between 1 and 1000" in str(limit.value)


def test_show_prints_each_action_with_its_reason(fast_saga):
    tenant = f.suspended_tenant()
    out = run("show", tenant.slug)
    assert "    resume        available" in out
    assert "    suspend       not now: Suspend applies to active tenants only" in out


def test_four_eyes_from_the_shell(fast_saga):
    fast_saga.CONTROLPLANE_DECOMMISSION_APPROVAL = True
    tenant = f.active_tenant()
    out = run("decommission", tenant.slug, "--actor", "alice", "--wait")
    assert "waits for a different person allowed to decommission to approve it" in out
    assert "  waiting      decommission asked by alice" in run("show", tenant.slug)
    with pytest.raises(CommandError) as own:
        run("approve", tenant.slug, "--actor", "alice")
    assert "a different person with the tenants.decommission_tenant permission" in str(own.value)
    out = run("approve", tenant.slug, "--actor", "bob", "--reason", "ok")
    assert "approved" in out
    assert Tenant.objects.get(pk=tenant.id).decommission_requested_at is not None
    other = f.active_tenant()
    run("decommission", other.slug, "--actor", "alice")
    assert "withdrawn" in run("withdraw", other.slug, "--actor", "alice")
    assert Tenant.objects.get(pk=other.id).awaiting_approval == ""
