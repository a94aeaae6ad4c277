"""The tenant list: search, filters, sort, keyset pages, counts per state."""

from __future__ import annotations

import re

import pytest

from tenants.models import Tenant

from .conftest import login, new_tenant

pytestmark = pytest.mark.django_db


def bulk_tenants(n: int, *, prefix: str = "bulk") -> None:
    """Many pending tenants at once: the list only reads rows, so no saga is needed."""
    Tenant.objects.bulk_create(
        Tenant(slug=f"{prefix}-{i:05d}", name=f"Bulk {i}", plan="growth", admin_email="b@x.test")
        for i in range(n)
    )


def slugs(response) -> list[str]:
    return re.findall(r'<tr data-tenant="([^"]+)"', response.content.decode())


def test_the_list_shows_tenants_with_state_badges_and_counts(client, viewer, make_state) -> None:
    make_state("active", slug="alpha")
    make_state("failed", slug="beta")
    new_tenant("gamma", start=False)
    login(client, viewer)
    response = client.get("/tenants/")
    assert response.status_code == 200
    body = response.content.decode()
    assert set(slugs(response)) == {"alpha", "beta", "gamma"}
    assert '<span class="badge state-active" data-state="active">Active</span>' in body
    assert '<span class="badge state-failed" data-state="failed">Failed</span>' in body
    counts = dict(
        re.findall(r'data-state-count="(\w+)">\s*<span[^>]*>\w+</span> <strong>(\d+)', body)
    )
    assert counts == {
        "pending": "1",
        "provisioning": "0",
        "updating": "0",
        "active": "1",
        "failed": "1",
        "suspended": "0",
        "decommissioned": "0",
    }
    # Viewers see no create button.
    assert "New tenant" not in body.split("<main")[1]


def test_search_matches_slug_name_and_email(client, viewer, roles) -> None:
    new_tenant("acme", start=False, name="Acme Rockets", admin_email="boss@acme.test")
    new_tenant("globex", start=False, name="Globex", admin_email="hank@globex.test")
    login(client, viewer)
    assert slugs(client.get("/tenants/?q=acm")) == ["acme"]
    assert slugs(client.get("/tenants/?q=rockets")) == ["acme"]
    assert slugs(client.get("/tenants/?q=hank@")) == ["globex"]
    assert slugs(client.get("/tenants/?q=nothing-like-it")) == []


def test_filters_by_state_and_plan(client, viewer, make_state) -> None:
    make_state("active", slug="live-one", plan="enterprise")
    new_tenant("waiting", start=False, plan="enterprise")
    new_tenant("small", start=False, plan="starter")
    login(client, viewer)
    assert slugs(client.get("/tenants/?state=active")) == ["live-one"]
    assert sorted(slugs(client.get("/tenants/?plan=enterprise"))) == ["live-one", "waiting"]
    assert slugs(client.get("/tenants/?state=pending&plan=starter")) == ["small"]
    # Unknown values are ignored rather than answered with an error page.
    assert len(slugs(client.get("/tenants/?state=bogus&plan=<x>&sort=drop"))) == 3


def test_sorts(client, viewer, roles) -> None:
    for slug in ("bravo", "alpha", "charlie"):
        new_tenant(slug, start=False)
    login(client, viewer)
    assert slugs(client.get("/tenants/?sort=slug")) == ["alpha", "bravo", "charlie"]
    assert slugs(client.get("/tenants/?sort=-slug")) == ["charlie", "bravo", "alpha"]
    assert slugs(client.get("/tenants/?sort=newest")) == ["charlie", "alpha", "bravo"]
    assert slugs(client.get("/tenants/?sort=oldest")) == ["bravo", "alpha", "charlie"]


@pytest.mark.parametrize("sort", ["newest", "oldest", "slug", "-slug"])
def test_keyset_pages_walk_every_tenant_once_both_ways(client, viewer, sort) -> None:
    bulk_tenants(120)
    login(client, viewer)
    seen: list[str] = []
    pages = []
    url = f"/tenants/?sort={sort}&plan=growth"
    while url:
        response = client.get(url)
        page = slugs(response)
        assert 0 < len(page) <= 50
        pages.append(page)
        seen += page
        match = re.search(r'rel="next" href="([^"]+)"', response.content.decode())
        url = "/tenants/" + match.group(1).replace("&amp;", "&") if match else ""
    assert len(seen) == 120 and len(set(seen)) == 120
    assert [len(p) for p in pages] == [50, 50, 20]
    # And back: "Previous" from the last page gives the middle page again.
    match = re.search(r'rel="prev" href="([^"]+)"', response.content.decode())
    assert match
    back = client.get("/tenants/" + match.group(1).replace("&amp;", "&"))
    assert slugs(back) == pages[1]


def test_a_tampered_cursor_shows_the_first_page(client, viewer) -> None:
    bulk_tenants(3)
    login(client, viewer)
    response = client.get("/tenants/?cursor=not*base64")
    assert response.status_code == 200
    assert len(slugs(response)) == 3
    response = client.get("/tenants/?cursor=eyJrIjpbMV0sImQiOiJuZXh0In0")  # wrong key length
    assert len(slugs(response)) == 3


def test_the_list_pages_with_keyset_not_offset(client, viewer, django_assert_max_num_queries):
    bulk_tenants(60)
    login(client, viewer)
    first = client.get("/tenants/")
    next_url = re.search(r'rel="next" href="([^"]+)"', first.content.decode()).group(1)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        client.get("/tenants/" + next_url.replace("&amp;", "&"))
    sql = " ".join(q["sql"] for q in queries.captured_queries if "tenants_tenant" in q["sql"])
    assert "OFFSET" not in sql.upper()


def test_query_count_does_not_grow_with_tenants(client, viewer, django_assert_max_num_queries):
    login(client, viewer)
    bulk_tenants(2, prefix="few")
    client.get("/tenants/")  # warm the session and permission caches
    # session, user, permissions, the search's column statistics (PostgreSQL), the page and
    # the fleet's counts (chips, total, needs attention, anything in flight: one read): a
    # fixed number whatever the fleet's size.
    with django_assert_max_num_queries(6) as few:
        client.get("/tenants/?q=e")
    bulk_tenants(150, prefix="many")
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get("/tenants/?q=e")
    assert len(slugs(response)) == 50


def test_names_with_markup_are_escaped(client, viewer, roles) -> None:
    new_tenant("xss", start=False, name="<script>alert(1)</script>")
    login(client, viewer)
    body = client.get("/tenants/").content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
