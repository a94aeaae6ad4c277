"""Conditions, run history and honest statuses through every door: API, console, command,
admin. The situations are built through the services (tests/factories.py)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from api.tokens import recent_tokens
from provisioning.models import Run
from tenants import selectors
from tenants.errors import OperationError
from tenants.services import cancel_provisioning, decommission_tenant

from .. import factories as f
from ..api.conftest import client_for, error_of
from ..conftest import drive, drive_compensation
from ..console.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def fleet(fast_saga):
    """One tenant per situation, by name."""
    return {name: make(fast_saga) for name, make in f.SITUATIONS.items()}


ATTENTION = {"pending_with_error", "provisioning_stalled", "failed", "change_failed"}


# --- the selector -----------------------------------------------------------------------------


def test_filters_report_every_bad_one_at_once(db):
    with pytest.raises(OperationError) as caught:
        selectors.TenantFilters.parse(
            state="sleeping", plan="huge", condition="ok,bogus", needs_attention="maybe"
        )
    assert caught.value.code == "validation_error"
    assert set(caught.value.details) == {"state", "plan", "condition", "needs_attention"}
    assert "'bogus'" in caught.value.details["condition"][0]


def test_q_and_slug_are_normalised_once(db):
    filters = selectors.TenantFilters.parse(q="  acme\x00 ", slug="  ACME-Corp ")
    assert (filters.q, filters.slug) == ("acme", "acme-corp")


# --- API --------------------------------------------------------------------------------------


def test_api_list_items_carry_condition_and_filter_by_it(fleet, viewer):
    api = client_for(viewer)
    body = api.get("/tenants", {"limit": 100}).json()
    by_id = {item["id"]: item for item in body["items"]}
    for name, tenant in fleet.items():
        item = by_id[str(tenant.id)]
        assert item["condition"] == f.reload(tenant).condition
        assert item["needs_attention"] == (name in ATTENTION)
    attention = api.get("/tenants", {"needs_attention": "true"}).json()["items"]
    assert {i["id"] for i in attention} == {str(fleet[n].id) for n in ATTENTION}
    some = api.get("/tenants", {"condition": "failed,stalled"}).json()["items"]
    assert {i["id"] for i in some} == {
        str(fleet["failed"].id),
        str(fleet["provisioning_stalled"].id),
    }
    detail = api.get(f"/tenants/{fleet['failed'].id}").json()
    assert (detail["condition"], detail["needs_attention"]) == ("failed", True)


def test_api_refuses_an_unknown_condition_with_422(viewer):
    response = client_for(viewer).get("/tenants", {"condition": "ok,sleepy"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"condition"}


def test_api_filtered_list_has_a_fixed_query_count(fleet, viewer, django_assert_num_queries):
    api = client_for(viewer)
    assert api.get("/tenants", {"needs_attention": "true"}).status_code == 200
    recent_tokens.forget_all()  # cold: the token and its permissions are read
    with django_assert_num_queries(4):
        response = api.get("/tenants", {"needs_attention": "true", "q": "tenant"})
    assert response.status_code == 200


def test_api_run_history_newest_first_with_steps_and_allocations(fast_saga, viewer):
    tenant = f.failed_tenant()  # attempt 1 failed and rolled back
    from tenants.services import retry_provisioning

    retry_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    drive(f.reload(tenant).workflow_id)
    api = client_for(viewer)
    response = api.get(f"/tenants/{tenant.id}/runs")
    assert response.status_code == 200
    runs = response.json()["items"]
    assert [r["attempt"] for r in runs] == [2, 1]
    assert [r["status"] for r in runs] == ["completed", "failed"]
    assert runs[1]["actor"] == "user:tester"
    first = {s["name"]: s for s in runs[1]["steps"]}
    assert first["create_database"]["status"] == "failed"
    assert first["create_database"]["tries"] == fast_saga.CONTROLPLANE_STEP_MAX_TRIES
    assert first["allocate_storage"]["status"] == "compensated"
    assert first["mark_active"]["status"] == "skipped"
    assert {a["kind"] for a in runs[1]["allocated"]} == {"storage", "identity"}
    assert {a["kind"] for a in runs[1]["released"]} == {"storage", "identity"}
    assert all(s["status"] == "completed" for s in runs[0]["steps"])
    assert api.get("/tenants/nope/runs").status_code == 404


def test_a_dead_run_never_shows_a_step_running_or_dispatched(fast_saga, viewer):
    tenant = f.provisioning_tenant()  # allocate_identity dispatched
    cancel_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    drive_compensation(tenant.workflow_id)
    runs = client_for(viewer).get(f"/tenants/{tenant.id}/runs").json()["items"]
    statuses = {s["name"]: s["status"] for s in runs[0]["steps"]}
    assert statuses["allocate_identity"] == "abandoned"
    assert statuses["allocate_storage"] == "compensated"
    assert statuses["mark_active"] == "skipped"
    assert not {"running", "dispatched"} & set(statuses.values())


def test_a_reset_run_shows_its_cut_off_step_abandoned(fast_saga, viewer):
    tenant = f.reset_tenant(fast_saga)
    run = Run.objects.filter(tenant=tenant).get()
    assert run.status == "orphaned"
    statuses = {
        s["name"]: s["status"]
        for s in client_for(viewer).get(f"/tenants/{tenant.id}/runs").json()["items"][0]["steps"]
    }
    assert statuses["create_database"] == "abandoned"
    assert statuses["allocate_storage"] == "completed"  # kept for the next attempt
    assert statuses["mark_active"] == "skipped"


# --- console ----------------------------------------------------------------------------------


def test_console_list_shows_conditions_and_the_attention_chip(fleet, client, viewer):
    login(client, viewer)
    body = client.get("/tenants/").content.decode()
    assert 'data-attention-count="4"' in body
    assert 'data-condition="stalled"' in body and "Needs attention" in body
    wanted = {f.reload(fleet[n]).slug for n in ATTENTION}
    # The API's parameter name, and the console's earlier one that bookmarks may still carry.
    for url in ("/tenants/?needs_attention=1", "/tenants/?attention=1"):
        filtered = client.get(url).content.decode()
        assert set(__import__("re").findall(r'data-tenant="([\w-]+)"', filtered)) == wanted
        assert 'aria-current="true">Needs attention' in filtered  # the chip shows it is on


def test_console_list_polls_while_in_flight_and_stops_after(fast_saga, client, viewer):
    tenant = f.provisioning_tenant()
    login(client, viewer)
    page = client.get("/tenants/?state=provisioning&sort=slug")
    assert 'hx-get="/tenants/?state=provisioning&amp;sort=slug"' in page.content.decode()
    poll = client.get("/tenants/?state=provisioning&sort=slug", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and 'id="fleet"' in poll.content.decode()
    drive(tenant.workflow_id)
    poll = client.get("/tenants/?state=provisioning&sort=slug", headers={"HX-Request": "true"})
    assert poll.status_code == 286  # nothing moves: htmx stops polling
    assert "hx-trigger" not in poll.content.decode()


def test_console_list_says_what_is_wrong_with_a_bad_filter(client, viewer):
    login(client, viewer)
    response = client.get("/tenants/?condition=sleepy")
    assert response.status_code == 200
    assert "Unknown condition" in response.content.decode()


def test_console_detail_lost_try_is_named_not_making_progress(fast_saga, client, viewer):
    import time_machine
    from django.utils import timezone

    from provisioning.watchdog import run_watchdog

    tenant = f.new_tenant(faults={"allocate_storage": "stall"})
    drive(tenant.workflow_id)
    later = timezone.now() + timezone.timedelta(
        seconds=fast_saga.CONTROLPLANE_HEARTBEAT_TIMEOUT * 2
    )
    with time_machine.travel(later, tick=False):
        run_watchdog()
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert "the step&#x27;s try was lost; resending (try 2 of 3)" in body
    assert "making progress" not in body
    assert 'data-condition="lost"' in body


def test_console_detail_stalled_step_reads_stalled(fast_saga, client, viewer):
    tenant = f.stalled_tenant(fast_saga)
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert 'data-step="create_database" data-status="stalled"' in body


def test_after_a_cancel_the_guide_offers_retry_or_decommission(fast_saga, client, viewer):
    tenant = f.cancelled_tenant()
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert "Retry provisioning if this tenant is still wanted" in body
    assert "decommission it if not" in body


def test_a_decommissioned_tenant_shows_no_recorded_error(fast_saga, client, viewer):
    tenant = f.failed_tenant()
    decommission_tenant(tenant_id=tenant.id, actor=f.ACTOR)
    from provisioning import compensation

    compensation.decommission_tenant(tenant.id)
    assert f.reload(tenant).failed_activity  # the past failure is still on the row ...
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert "Recorded error" not in body  # ... but belongs to the timeline, not a red box
    assert 'id="run-history"' not in body or "Earlier attempts" in body


def test_console_detail_shows_earlier_attempts_collapsed(fast_saga, client, viewer):
    tenant = f.failed_tenant()
    from tenants.services import retry_provisioning

    retry_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    drive(f.reload(tenant).workflow_id)
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.id}/").content.decode()
    assert '<details class="run-history" data-attempt="1">' in body
    assert "Earlier attempts" in body


def test_audit_feed_filters_by_actor_and_hides_step_chatter(fast_saga, client, viewer):
    f.active_tenant()
    login(client, viewer)
    everything = client.get("/audit/").content.decode()
    assert "tenant.provisioning.step_completed" in everything
    quiet = client.get("/audit/?hide_steps=1").content.decode()
    assert "tenant.provisioning.step_completed" not in quiet
    assert "tenant.provisioning.completed" in quiet
    mine = client.get("/audit/?actor=tester").content.decode()
    assert "tenant.created" in mine and "step_completed" not in mine
    api = client_for(viewer)
    items = api.get("/audit", {"actor": "user:tester"}).json()["items"]
    assert items and {e["actor"] for e in items} == {"user:tester"}


# --- command ----------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("tenant", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_command_lists_by_condition_and_attention(fleet):
    rows = json.loads(run("list", "--needs-attention", "--json"))
    assert {r["slug"] for r in rows} == {f.reload(fleet[n]).slug for n in ATTENTION}
    assert all(r["needs_attention"] for r in rows)
    text = run("list", "--condition", "stalled")
    assert f.reload(fleet["provisioning_stalled"]).slug in text and "stalled!" in text
    with pytest.raises(CommandError, match="Unknown condition 'sleepy'"):
        run("list", "--condition", "sleepy")


def test_command_show_prints_the_condition_and_one_time_format(fleet):
    text = run("show", f.reload(fleet["failed"]).slug)
    assert "condition    failed (needs attention)" in text
    assert " UTC" in text


# --- admin ------------------------------------------------------------------------------------


def test_admin_list_filters_by_condition(fleet, client, admin_user):
    client.force_login(admin_user)
    response = client.get("/admin/tenants/tenant/?condition=attention")
    assert response.status_code == 200
    body = response.content.decode()
    for name, tenant in fleet.items():
        assert (f.reload(tenant).slug in body) == (name in ATTENTION), name


def test_text_search_has_trigram_indexes(db):
    from django.db import connection

    from tenants.models import Tenant

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'tenants_tenant' "
            "AND indexname LIKE '%%_trgm'"
        )
        names = {row[0] for row in cursor.fetchall()}
    assert names == {"tenant_slug_trgm", "tenant_name_trgm", "tenant_admin_email_trgm"}
    # The expression the indexes cover is the one Django's icontains writes.
    sql = str(selectors.tenant_list(selectors.TenantFilters(q="acme")).query)
    assert 'UPPER("tenants_tenant"."slug"::text) LIKE UPPER(' in sql

    # Where a word is in most names (ANALYZE's sample says so), the name index is asked only
    # for the rare stretch of q and the whole of q is checked on what it returns; the rows
    # are those a plain icontains finds, whatever q.
    Tenant.objects.bulk_create(
        Tenant(slug=f"t-{i:04d}", name=f"Customer {i}", plan="growth", admin_email=f"a{i}@c.test")
        for i in range(400)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE tenants_tenant")
    sql = str(selectors.tenant_list(selectors.TenantFilters(q="customer 123")).query)
    assert 'UPPER("tenants_tenant"."name"::text) LIKE UPPER(% 123%)' in sql
    assert 'STRPOS(UPPER("tenants_tenant"."name"), UPPER(customer 123)) > 0' in sql
    # Nothing rare in it for the names: their index is not asked (the list's order is walked).
    sql = str(selectors.tenant_list(selectors.TenantFilters(q="customer")).query)
    assert 'UPPER("tenants_tenant"."name"::text) LIKE' not in sql
    assert 'STRPOS(UPPER("tenants_tenant"."name"), UPPER(customer)) > 0' in sql
    queries = ("customer 123", "customer 42", "Customer 1", "customer", "tomer 39", "t-01")
    for q in (*queries, "42@c.te", "zzz", "r 4", "CUSTOMER 399"):
        plain = (
            Tenant.objects.filter(name__icontains=q)
            | Tenant.objects.filter(slug__icontains=q)
            | Tenant.objects.filter(admin_email__icontains=q)
        )
        found = selectors.tenant_list(selectors.TenantFilters(q=q)).values_list("slug", flat=True)
        assert set(found) == set(plain.values_list("slug", flat=True)), q


def test_the_search_asks_the_index_for_the_rare_stretch_of_q():
    from tenants.search import rare_part

    # Half the sampled names contain "CUSTOMER "; none contains "R 4" or "421".
    sample = [("CUSTOMER 1", 0.25), ("CUSTOMER 7", 0.25), ("ACME", 0.25), ("GLOBEX", 0.25)]
    assert rare_part("customer 421", sample) == "r 421"
    assert rare_part("customer 42", sample) == "r 42"  # a word's start: "  4", " 42"
    assert rare_part("customer 4", sample) == ""  # "r 4": too little to look up
    assert rare_part("globex", sample) == ""  # all of it common: no stretch is rare
    assert rare_part("initech", sample) == "initech"  # nothing common in it
    assert rare_part("customer 42", []) == "customer 42"  # no statistics: q itself
    assert rare_part("ab", sample) == "ab"  # too short for a trigram
    assert rare_part("customer -", sample) == ""  # no letters left to look up
