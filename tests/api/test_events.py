"""GET /tenants/{id}/events (oldest first) and GET /audit (newest first, filtered)."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from api.tokens import recent_tokens
from audit.models import Event
from tests import factories as f

from .conftest import error_of

pytestmark = pytest.mark.django_db

EVENT_FIELDS = {"id", "type", "occurred_at", "tenant_id", "run_id", "actor", "data"}


def walk(client, path, **params):
    """Every item of a cursor-paginated list, and how many pages it took."""
    items, cursor, pages = [], None, 0
    while True:
        body = client.get(path, {**params, **({"cursor": cursor} if cursor else {})}).json()
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_a_tenants_events_are_oldest_first(as_viewer):
    tenant = f.active_tenant()
    body = as_viewer.get(f"/tenants/{tenant.id}/events").json()
    types = [e["type"] for e in body["items"]]
    assert types[0] == "tenant.created"
    assert types[-1] == "tenant.provisioning.completed"
    assert [e["id"] for e in body["items"]] == sorted(e["id"] for e in body["items"])
    assert all(set(e) == EVENT_FIELDS for e in body["items"])
    assert {e["tenant_id"] for e in body["items"]} == {str(tenant.id)}
    step = next(e for e in body["items"] if e["type"] == "tenant.provisioning.step_completed")
    assert {"step", "reused", "duration_ms"} <= set(step["data"])
    assert step["run_id"] == str(tenant.workflow_id)


def test_a_tenants_events_page_by_cursor_and_new_ones_come_last(as_viewer):
    tenant = f.active_tenant()
    total = Event.objects.filter(tenant_id=tenant.id).count()
    page1 = as_viewer.get(f"/tenants/{tenant.id}/events", {"limit": 5}).json()
    f.suspend_tenant(tenant_id=tenant.id, actor=f.ACTOR)  # a new event between pages
    rest, _ = walk(as_viewer, f"/tenants/{tenant.id}/events", limit=5)
    ids = [e["id"] for e in rest]
    assert len(ids) == len(set(ids)) == total + 1
    assert rest[-1]["type"] == "tenant.suspended"
    after = as_viewer.get(
        f"/tenants/{tenant.id}/events", {"limit": 200, "cursor": page1["next_cursor"]}
    ).json()
    assert [e["id"] for e in page1["items"] + after["items"]] == ids


def test_events_of_an_unknown_tenant_are_404(as_viewer):
    response = as_viewer.get(f"/tenants/{uuid.uuid4()}/events")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_the_feed_is_newest_first_across_tenants(as_viewer):
    one, two = f.active_tenant(), f.pending_tenant()
    items, pages = walk(as_viewer, "/audit", limit=7)
    ids = [e["id"] for e in items]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == Event.objects.count() and pages > 1
    assert {e["tenant_id"] for e in items} == {str(one.id), str(two.id)}


def test_the_feed_is_stable_while_events_are_appended(as_viewer):
    tenant = f.active_tenant()
    before = set(Event.objects.values_list("id", flat=True))
    page1 = as_viewer.get("/audit", {"limit": 4}).json()
    f.suspend_tenant(tenant_id=tenant.id, actor=f.ACTOR)
    page2 = as_viewer.get("/audit", {"limit": 200, "cursor": page1["next_cursor"]}).json()
    shown = [e["id"] for e in page1["items"] + page2["items"]]
    assert len(shown) == len(set(shown))
    assert set(shown) == before


def test_the_feed_filters_by_type_whole_or_dotted_prefix(as_viewer):
    tenant = f.active_tenant()
    f.suspend_tenant(tenant_id=tenant.id, actor=f.ACTOR)

    def types(**params):
        return {e["type"] for e in walk(as_viewer, "/audit", limit=200, **params)[0]}

    assert types(type="tenant.suspended") == {"tenant.suspended"}
    provisioning = types(type="tenant.provisioning")
    assert provisioning and all(t.startswith("tenant.provisioning.") for t in provisioning)
    assert types(type="tenant.provisioning.") == provisioning
    assert types(type="tenant.resource") == {"tenant.resource.allocated"}
    # A prefix matches whole dotted parts only.
    assert types(type="tenant.provision") == set()
    assert types(type="tenant.provisioning.step") == set()
    assert "tenant.created" in types(type="tenant")


def test_the_feed_filters_by_tenant_and_since(as_viewer):
    one = f.active_tenant()
    cut = timezone.now()
    two = f.pending_tenant()
    by_tenant = walk(as_viewer, "/audit", tenant=str(one.id), limit=200)[0]
    assert {e["tenant_id"] for e in by_tenant} == {str(one.id)}
    since = walk(as_viewer, "/audit", since=cut.isoformat(), limit=200)[0]
    assert {e["tenant_id"] for e in since} == {str(two.id)}
    naive = walk(as_viewer, "/audit", since=cut.replace(tzinfo=None).isoformat(), limit=200)[0]
    assert naive == since


@pytest.mark.parametrize(
    "params",
    [
        {"tenant": "x" * 101},  # an id or a slug; both are shorter
        {"since": "yesterday"},
        {"since": "9999-12-31T23:59:59-23:59"},
        {"limit": 0},
        {"cursor": "eyJrIjoiZXZlbnRzIiwiaSI6MX0"},  # a tenant-events cursor
        {"cursor": "eyJrIjoiYXVkaXQiLCJpIjp0cnVlfQ"},  # {"k":"audit","i":true}
        {"type": "x" * 81},
        {"hide_steps": "maybe"},
    ],
)
def test_bad_feed_parameters_are_422(as_viewer, params):
    response = as_viewer.get("/audit", params)
    assert response.status_code == 422
    assert set(error_of(response)["details"]) == set(params)


@pytest.mark.parametrize("persona", ["viewer", "operator", "admin", "outsider", "anonymous"])
def test_reads_for_every_persona(personas, persona):
    tenant = f.active_tenant()
    paths = ["/tenants", f"/tenants/{tenant.id}", f"/tenants/{tenant.id}/events", "/audit"]
    expected = {"anonymous": 401, "outsider": 403}.get(persona, 200)
    for path in paths:
        response = personas[persona].get(path)
        assert response.status_code == expected, (path, response.content)
        if expected == 403:
            assert error_of(response)["code"] == "permission_denied"


def test_a_user_who_may_see_tenants_but_not_events(operator, django_user_model):
    from django.contrib.auth.models import Permission

    from .conftest import client_for

    user = django_user_model.objects.create_user("tess")
    user.user_permissions.add(Permission.objects.get(codename="view_tenant"))
    client = client_for(user)
    tenant = f.pending_tenant()
    assert client.get(f"/tenants/{tenant.id}").status_code == 200
    assert client.get(f"/tenants/{tenant.id}/events").status_code == 403
    assert client.get("/audit").status_code == 403


def test_feed_reads_a_fixed_number_of_queries(as_viewer, django_assert_num_queries):
    tenant = f.active_tenant()
    assert as_viewer.get("/audit").status_code == 200
    # token, permissions, the tenant filter's tenant, the page of events (cold)
    recent_tokens.forget_all()
    with django_assert_num_queries(4):
        response = as_viewer.get(
            "/audit", {"type": "tenant.provisioning", "tenant": str(tenant.id)}
        )
    assert response.status_code == 200
    assert response.json()["items"]
    # token, permissions (tenants, then events: one read), the tenant, the page of events
    recent_tokens.forget_all()
    with django_assert_num_queries(4):
        response = as_viewer.get(f"/tenants/{tenant.id}/events")
    assert response.status_code == 200


@pytest.mark.parametrize("since", ["0.0", "1700000000", "-5"])
def test_the_feed_refuses_a_number_for_since(as_viewer, since):
    # A bare number is not ISO 8601 (pydantic alone would read it as a Unix timestamp).
    response = as_viewer.get("/audit", {"since": since})
    assert response.status_code == 422
    assert error_of(response)["code"] == "validation_error"
