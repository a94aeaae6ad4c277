"""The tenant detail page: what it shows, which buttons, live refresh, escaping, query counts."""

from __future__ import annotations

import html
import re

import pytest
from django.test import Client

from audit.models import Event
from provisioning.models import Run
from tenants.permissions import recent_users
from tenants.services import resume_tenant, retry_provisioning, suspend_tenant
from tests import factories as f

from .conftest import SHELL, STATES, fresh, login, new_tenant, run_to_end
from .providers import HOSTILE, STUCK

pytestmark = pytest.mark.django_db

LABELS = {
    "cancel": "Cancel provisioning",
    "reset": "Reset provisioning",
    "retry": "Retry provisioning",
    "suspend": "Suspend",
    "resume": "Resume",
    "decommission": "Decommission",
    "change_plan": "Change plan",
    "pause": "Pause",
    "unpause": "Unpause",
}
# What the state and recorded error allow: the one situations table (tests/factories.py), under
# the names this package's make_state uses.
ALLOWED = {kind: f.ALLOWED_ACTIONS[f.CONSOLE_KINDS.get(kind, kind)] for kind in STATES}
OPERATOR = {"cancel", "reset", "retry", "suspend", "resume", "change_plan", "pause", "unpause"}
ROLE_ACTIONS = {"viewer": set(), "operator": OPERATOR, "admin": OPERATOR | {"decommission"}}


def buttons(response) -> set[str]:
    """The labels of the buttons in the Actions section."""
    body = response.content.decode()
    section = body.split('id="actions"', 1)[1].split("</section>", 1)[0]
    return set(re.findall(r'<a class="button action[^"]*"[^>]*>([^<]+)</a>', section))


def unavailable(response) -> dict[str, str]:
    """Operation name -> the reason shown for it, for each one not offered."""
    body = response.content.decode()
    section = body.split('id="actions"', 1)[1].split("</section>", 1)[0]
    found = re.findall(
        r'<li data-unavailable="(\w+)"><strong>[^<]+</strong>: <span class="muted">([^<]+)</span>',
        section,
    )
    return {name: html.unescape(reason) for name, reason in found}


def step_statuses(response) -> dict[str, str]:
    return dict(re.findall(r'data-step="(\w+)" data-status="(\w+)"', response.content.decode()))


@pytest.mark.parametrize("kind", STATES)
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_buttons_for_every_state_and_role(client, make_state, request, kind, role) -> None:
    user = request.getfixturevalue({"admin": "admin_user"}.get(role, role))
    tenant = make_state(kind)
    login(client, user)
    response = client.get(f"/tenants/{tenant.pk}/")
    assert response.status_code == 200
    expected = {LABELS[a] for a in ALLOWED[kind] & ROLE_ACTIONS[role]}
    assert buttons(response) == expected
    # Every operation not offered says why: the state, or (for a role) the permission.
    reasons = unavailable(response)
    assert set(reasons) == set(LABELS) - (ALLOWED[kind] & ROLE_ACTIONS[role])
    for name in ALLOWED[kind] - ROLE_ACTIONS[role]:
        assert "permission" in reasons[name], (name, reasons[name])
    assert all(reason.endswith(".") for reason in reasons.values())


def test_each_button_leads_to_a_confirmation_with_the_preview(
    client, admin_user, make_state
) -> None:
    login(client, admin_user)
    stalled = make_state("stalled")
    response = client.get(f"/tenants/{stalled.pk}/")
    assert f'href="/tenants/{stalled.pk}/cancel/"' in response.content.decode()
    page = client.get(f"/tenants/{stalled.pk}/cancel/")
    assert page.status_code == 200
    body = page.content.decode()
    # Cancel releases what the stalled run allocated (nothing so far but what the ledger holds)
    # and keeps nothing; the resulting state is pending; a reason may be given.
    assert 'data-to-state="pending"' in body
    assert 'name="reason"' in body
    assert "tenant.provisioning.cancel_requested" in body
    active = make_state("active", slug="typed")
    body = client.get(f"/tenants/{active.pk}/decommission/").content.decode()
    assert 'name="confirm_slug"' in body
    assert 'Type <strong class="wrap">typed</strong> to confirm' in body
    assert 'data-to-state="decommissioned"' in body
    released = re.findall(
        r'<li data-kind="(\w+)">', body.split('id="preview-release"')[1].split("</ul>")[0]
    )
    assert sorted(released) == sorted(
        ["storage", "identity", "database", "dns", "billing", "invite"]
    )


def test_the_page_shows_fields_handle_steps_and_heartbeat(client, viewer, make_state) -> None:
    from tests.conftest import drive

    tenant = make_state("provisioning", slug="halfway", name="Half Way Ltd")
    drive(tenant.workflow_id, max_steps=2)
    login(client, viewer)
    response = client.get(f"/tenants/{tenant.pk}/")
    body = response.content.decode()
    run = Run.objects.get(pk=tenant.workflow_id)
    assert "Half Way Ltd" in body and "ops@halfway.test" in body and "Starter" in body
    assert str(run.id) in body and "attempt 1" in body
    assert 'data-run-status="running"' in body
    statuses = step_statuses(response)
    assert list(statuses) == [
        "validate_request",
        "allocate_storage",
        "allocate_identity",
        "create_database",
        "configure_dns",
        "setup_billing",
        "invite_admin",
        "mark_active",
    ]
    assert statuses["validate_request"] == "completed"
    assert statuses["allocate_storage"] == "completed"
    assert statuses["allocate_identity"] == "dispatched"  # queued for a worker
    assert statuses["mark_active"] == "waiting"
    # No worker has taken it: how long it has waited, not a heartbeat of "0.0 s ago".
    assert re.search(r"queued for a worker \(\d+\.\d s\)", body)
    assert "last heartbeat" not in body
    assert 'data-kind="storage"' in body  # the storage allocation is held
    assert 'data-live="true"' in body and 'hx-trigger="every' in body
    # A worker starts it (and vanishes, so the page is read while it runs): the meter shows.
    from provisioning import saga

    Run.objects.filter(pk=run.pk).update(faults={"allocate_identity": "stall"})
    step = run.steps.get(name="allocate_identity")
    saga.execute_step(step.pk, step.token)
    response = client.get(f"/tenants/{tenant.pk}/")
    body = response.content.decode()
    assert step_statuses(response)["allocate_identity"] == "running"
    assert "last heartbeat" in body and "timeout 2.0 s" in body
    assert "What should I do?" in body
    assert 'data-recommendation="wait"' in body


def test_a_cancelled_run_shows_compensated_and_skipped_steps(client, viewer, make_state) -> None:
    tenant = make_state("cancelled")
    login(client, viewer)
    response = client.get(f"/tenants/{tenant.pk}/")
    statuses = step_statuses(response)
    assert statuses["validate_request"] == "completed"
    assert statuses["allocate_storage"] == "compensated"
    assert statuses["allocate_identity"] == "compensated"
    assert statuses["mark_active"] == "skipped"
    body = response.content.decode()
    assert "release_storage" in body and "Released by this run" in body
    assert 'data-event-type="tenant.provisioning.cancelled"' in body
    assert 'data-recommendation="retry"' in body


def test_a_failed_tenant_shows_its_error_and_failed_activity(client, viewer, make_state) -> None:
    tenant = make_state("failed")
    login(client, viewer)
    response = client.get(f"/tenants/{tenant.pk}/")
    body = response.content.decode()
    assert 'id="recorded-error"' in body
    assert "Recorded error in <code>allocate_identity</code>" in body
    assert "injected failure in allocate_identity" in body
    statuses = step_statuses(response)
    assert statuses["allocate_identity"] == "failed"
    assert statuses["allocate_storage"] == "compensated"
    assert statuses["create_database"] == "skipped"


def test_an_error_with_markup_is_escaped(client, viewer, fast_saga, make_state) -> None:
    fast_saga.CONTROLPLANE_PROVIDERS = {
        **fast_saga.CONTROLPLANE_PROVIDERS,
        "identity": "tests.console.providers.HostileIdentity",
    }
    tenant = run_to_end(make_state("provisioning", name="<img src=x onerror=alert(2)>"))
    assert fresh(tenant).last_error == HOSTILE
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert HOSTILE not in body and "<script>alert" not in body
    assert html.escape(HOSTILE) in body
    assert "<img src=x" not in body
    assert "&lt;img src=x onerror=alert(2)&gt;" in body


def test_a_release_failure_shows_on_the_held_allocation(client, viewer, make_state) -> None:
    tenant = make_state("pending_error")
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert "Release failed" in body
    assert STUCK not in body and html.escape(STUCK) in body
    assert 'data-recommendation="reset"' in body


def test_the_stalled_run_is_flagged_and_reset_recommended(client, viewer, make_state) -> None:
    tenant = make_state("stalled")
    login(client, viewer)
    body = client.get(f"/tenants/{tenant.pk}/").content.decode()
    assert "flagged this run as stalled" in body
    assert "stalled: no heartbeat after 3 tries" in body
    assert "last heartbeat" not in body  # no ticking clock on a run nobody works on
    assert 'data-recommendation="reset"' in body
    assert "Reset, then retry" in body


@pytest.mark.parametrize(
    ("kind", "live"),
    [("provisioning", True), ("decommissioning", True), ("active", False), ("stalled", False)],
)
def test_htmx_polls_get_the_partial_and_stop_when_settled(
    client, viewer, make_state, kind, live
) -> None:
    tenant = make_state(kind)
    login(client, viewer)
    response = client.get(f"/tenants/{tenant.pk}/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert "<html" not in body  # only the partial
    assert body.lstrip().startswith('<div id="live"')
    if live:
        assert response.status_code == 200
        assert "hx-trigger" in body
    else:
        assert response.status_code == 286  # htmx swaps this in and stops polling
        assert "hx-trigger" not in body


def flip(tenant, times: int) -> None:
    """Suspend and resume ``times`` times: two real events each."""
    for _ in range(times):
        suspend_tenant(tenant_id=tenant.pk, actor=SHELL)
        resume_tenant(tenant_id=tenant.pk, actor=SHELL)


def test_the_timeline_is_newest_first_and_paginated(client, viewer, make_state) -> None:
    tenant = make_state("active")
    flip(tenant, 12)
    ids = list(
        Event.objects.filter(tenant_id=tenant.pk).order_by("-id").values_list("id", flat=True)
    )
    login(client, viewer)
    seen: list[int] = []
    url = f"/tenants/{tenant.pk}/"
    while url:
        body = client.get(url).content.decode()
        page = [
            int(i) for i in re.findall(r'<li data-event-type="[^"]+" data-event-id="(\d+)"', body)
        ]
        assert len(page) <= 20
        seen += page
        older = re.search(r'href="\?events=([^"#]+)#timeline">Older', body)
        url = f"/tenants/{tenant.pk}/?events={older.group(1)}" if older else ""
    assert seen == ids  # every event once, newest first
    assert len(ids) > 40


def test_query_count_does_not_grow_with_events_or_tenants(
    client, admin_user, make_state, django_assert_max_num_queries
) -> None:
    tenant = make_state("failed")
    retry_provisioning(tenant_id=tenant.pk, actor=SHELL)
    run_to_end(tenant)
    login(client, admin_user)
    client.get(f"/tenants/{tenant.pk}/")
    # The full page adds the run history (three queries, however many runs).
    with django_assert_max_num_queries(14) as before:
        assert client.get(f"/tenants/{tenant.pk}/").status_code == 200
    flip(tenant, 30)
    for i in range(10):
        new_tenant(f"other-{i}", start=False)
    with django_assert_max_num_queries(len(before.captured_queries)):
        assert client.get(f"/tenants/{tenant.pk}/").status_code == 200
    with django_assert_max_num_queries(len(before.captured_queries)):
        polled = client.get(f"/tenants/{tenant.pk}/", headers={"HX-Request": "true"})
    assert polled.status_code in (200, 286)


def test_unknown_tenant_in_htmx_poll_is_404(client: Client, viewer) -> None:
    import uuid

    login(client, viewer)
    response = client.get(f"/tenants/{uuid.uuid4()}/", headers={"HX-Request": "true"})
    assert response.status_code == 404


def test_the_detail_page_reads_permissions_once_in_one_query(
    client, viewer, make_state, django_assert_num_queries
) -> None:
    tenant = make_state("failed")
    login(client, viewer)
    recent_users.forget_all()  # cold: the session's user and permissions are read
    # session, user, permissions (one query, then cached on the user for every button and
    # menu entry), and the detail's one statement (tenant with whether it has drift, run,
    # steps, failed-run count, allocations, the timeline's first page, the earlier attempts
    # and their steps).
    with django_assert_num_queries(4) as queries:
        response = client.get(f"/tenants/{tenant.pk}/")
    assert response.status_code == 200
    assert sum("auth_permission" in q["sql"] for q in queries.captured_queries) == 1
    # Warm (controlplane.recent keeps the session's user, permissions read, for a second):
    # neither the user nor the permissions again.
    with django_assert_num_queries(2):
        assert client.get(f"/tenants/{tenant.pk}/").status_code == 200
