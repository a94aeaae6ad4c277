"""The audit feed page: newest first, filters, cursor pages, live partial, downloads."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import Event
from tenants.services import resume_tenant, suspend_tenant

from .conftest import SHELL, login, new_tenant

pytestmark = pytest.mark.django_db


def ids(response) -> list[int]:
    return [
        int(i)
        for i in re.findall(
            r"<tr data-event-type=\"[^\"]+\">\s*<td[^>]*>(\d+)</td>", response.content.decode()
        )
    ]


def flip(tenant, times: int) -> None:
    for _ in range(times):
        suspend_tenant(tenant_id=tenant.pk, actor=SHELL)
        resume_tenant(tenant_id=tenant.pk, actor=SHELL)


def test_the_feed_is_newest_first_and_names_tenants(client, viewer, make_state) -> None:
    tenant = make_state("active", slug="feedy")
    login(client, viewer)
    response = client.get("/audit/")
    assert response.status_code == 200
    all_ids = list(Event.objects.order_by("-id").values_list("id", flat=True))
    assert ids(response) == all_ids
    body = response.content.decode()
    assert f'href="/tenants/{tenant.pk}/">feedy</a>' in body
    assert 'data-live="true"' in body and "hx-trigger" in body


def test_filter_by_type_prefix_tenant_and_since(client, viewer, make_state) -> None:
    a = make_state("active", slug="alpha")
    b = new_tenant("bravo", start=False)
    login(client, viewer)

    def types(url: str) -> set[str]:
        return set(re.findall(r'<tr data-event-type="([^"]+)"', client.get(url).content.decode()))

    assert types("/audit/?type=tenant.provisioning") == {
        t
        for t in Event.objects.values_list("type", flat=True)
        if t.startswith("tenant.provisioning.")
    }
    assert types("/audit/?type=tenant.created") == {"tenant.created"}
    assert types("/audit/?type=tenant.prov") == set()  # a prefix is a whole dotted segment
    assert types(f"/audit/?tenant={b.pk}") == {"tenant.created"}
    assert types("/audit/?tenant=bravo") == {"tenant.created"}
    assert "tenant.provisioning.completed" in types("/audit/?tenant=alpha")
    later = timezone.now() + timedelta(hours=1)
    with time_machine.travel(later, tick=False):
        suspend_tenant(tenant_id=a.pk, actor=SHELL)
    since = (later - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert types(f"/audit/?since={since}") == {"tenant.suspended"}


def test_a_bad_since_is_explained_not_an_error(client, viewer, make_state) -> None:
    make_state("pending")
    login(client, viewer)
    response = client.get("/audit/?since=yesterday-ish")
    assert response.status_code == 200
    assert "is not an ISO 8601 date-time" in response.content.decode()
    assert len(ids(response)) == Event.objects.count()


def test_cursor_pages_cover_the_feed_once(client, viewer, make_state) -> None:
    tenant = make_state("active")
    flip(tenant, 40)
    login(client, viewer)
    seen: list[int] = []
    url = "/audit/?type=tenant"
    while url:
        response = client.get(url)
        page = ids(response)
        assert len(page) <= 50
        seen += page
        # Older pages do not poll: the operator is reading history.
        if "cursor=" in url:
            assert 'data-live="false"' in response.content.decode()
        nxt = re.search(r'rel="next" href="([^"]+)"', response.content.decode())
        url = "/audit/" + nxt.group(1).replace("&amp;", "&") if nxt else ""
    assert seen == list(Event.objects.order_by("-id").values_list("id", flat=True))


def test_the_htmx_poll_gets_the_feed_partial(client, viewer, make_state) -> None:
    make_state("pending")
    login(client, viewer)
    response = client.get("/audit/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="feed"')


def test_download_jsonl_and_csv_of_the_filtered_feed(client, viewer, make_state) -> None:
    tenant = make_state("active", slug="dl-one")
    new_tenant("other", start=False)
    login(client, viewer)
    response = client.get(f"/audit/?tenant={tenant.pk}&format=jsonl")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson"
    assert "attachment" in response["Content-Disposition"]
    lines = b"".join(response.streaming_content).decode().splitlines()
    rows = [json.loads(line) for line in lines]
    expected = list(Event.objects.filter(tenant_id=tenant.pk).order_by("-id"))
    assert [r["id"] for r in rows] == [e.id for e in expected]
    assert set(rows[0]) == {"id", "type", "occurred_at", "tenant_id", "run_id", "actor", "data"}

    response = client.get(f"/audit/?tenant={tenant.pk}&type=tenant.provisioning&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert table[0] == ["id", "type", "occurred_at", "tenant_id", "run_id", "actor", "data"]
    assert [int(r[0]) for r in table[1:]] == [
        e.id for e in expected if e.type.startswith("tenant.provisioning.")
    ]
    assert all(json.loads(r[6]) is not None for r in table[1:])


def test_event_data_with_markup_is_escaped(client, viewer, roles) -> None:
    new_tenant("xss-feed", start=False, name="<script>bad()</script>")
    login(client, viewer)
    body = client.get("/audit/").content.decode()
    assert "<script>bad()</script>" not in body


def test_query_count_does_not_grow_with_events(
    client, viewer, make_state, django_assert_num_queries
) -> None:
    tenant = make_state("active")
    login(client, viewer)
    assert client.get("/audit/").status_code == 200
    # session (its user with the permissions kept from the request before: controlplane.recent),
    # the page of events, the slugs of its tenants
    with django_assert_num_queries(3):
        assert client.get("/audit/").status_code == 200
    flip(tenant, 40)
    for i in range(20):
        new_tenant(f"more-{i}", start=False)
    with django_assert_num_queries(3):
        response = client.get("/audit/")
    assert response.status_code == 200
    assert len(ids(response)) == 50
