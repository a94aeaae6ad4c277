"""One filter parser for every list: the API, the console, the admin, the commands and a bulk
operation's ``filter`` give the same answer for the same filter, and the same message for the
same bad one (``TenantFilters.parse``, ``AuditFilters.parse``, ``controlplane.filters``)."""

from __future__ import annotations

import html
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from tenants.services import Actor, create_tenant

from ..admin.helpers import logged_in, messages_of
from ..api.conftest import client_for

pytestmark = pytest.mark.django_db

SETUP = Actor.shell("setup")


def make(slug: str, name: str) -> None:
    create_tenant(
        slug=slug,
        name=name,
        plan="starter",
        admin_email=f"ops@{slug}.test",
        actor=SETUP,
        start=False,
    )


_CLIENTS: dict[int, Any] = {}


@pytest.fixture(autouse=True)
def _one_token_per_user() -> Any:
    _CLIENTS.clear()
    yield
    _CLIENTS.clear()


def api_client(user: Any) -> Any:
    if user.pk not in _CLIENTS:
        _CLIENTS[user.pk] = client_for(user)
    return _CLIENTS[user.pk]


def api_list(user: Any, **query: str) -> tuple[int, Any]:
    response = api_client(user).get("/tenants", query)
    return response.status_code, response.json()


def api_message(user: Any, path: str, query: dict[str, str]) -> str:
    response = api_client(user).get(path, query)
    assert response.status_code == 422, response.content
    return response.json()["error"]["message"]


def console_message(user: Any, path: str, query: dict[str, str]) -> str:
    response = logged_in(Client(), user).get(path, query)
    assert response.status_code == 200
    return html.unescape(response.context["problem"])


def command_message(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    return str(info.value)


def bulk_message(user: Any, filter: dict[str, Any]) -> str:
    response = api_client(user).post("/tenants/bulk/suspend", {"filter": filter, "dry_run": True})
    assert response.status_code == 422, response.content
    return response.json()["error"]["message"]


BAD_TENANT_FILTERS = [
    ("state", "bogus", "--state"),
    ("condition", "nope", "--condition"),
    ("plan", "gold", "--plan"),
    ("q", "x" * 201, "--q"),
]


@pytest.mark.parametrize(("key", "value", "flag"), BAD_TENANT_FILTERS)
def test_a_bad_tenant_filter_gets_one_message_in_every_door(
    operator: Any, key: str, value: str, flag: str
) -> None:
    api = api_message(operator, "/tenants", {key: value})
    console = console_message(operator, "/tenants/", {key: value})
    command = command_message("tenant", "list", flag, value)
    bulk = bulk_message(operator, {key: value})
    assert api == console == command == bulk, (api, console, command, bulk)
    assert key in api


def test_an_unknown_bulk_filter_key_is_named(operator: Any) -> None:
    message = bulk_message(operator, {"colour": "red"})
    assert "Unknown filter 'colour'" in message


def test_the_admin_gives_the_lists_message_for_a_bad_condition_and_a_long_search(
    admin_user: Any,
) -> None:
    client = logged_in(Client(), admin_user)
    expected = api_message(admin_user, "/tenants", {"condition": "nope"})
    response = client.get("/admin/tenants/tenant/", {"condition": "nope"})
    # Django's admin may refuse an unknown choice itself (?e=1); ours names it when it gets it.
    if response.status_code == 200 and response.context:
        assert expected in messages_of(response) or not response.context["cl"].result_count
    long_q = "x" * 201
    expected = api_message(admin_user, "/tenants", {"q": long_q})
    response = client.get("/admin/tenants/tenant/", {"q": long_q})
    assert response.status_code == 200
    assert expected in messages_of(response)


def test_search_means_the_phrase_in_every_door(operator: Any, admin_user: Any) -> None:
    """``q`` is one phrase (documented in docs/console.md, docs/api.md): "acme corp" finds Acme
    Corp everywhere, "corp acme" nowhere (the admin used to split words)."""
    make("acme", "Acme Corp")
    make("zenith", "Zenith Ltd")
    for q, expected in (("acme corp", ["acme"]), ("corp acme", []), ("ZENITH", ["zenith"])):
        status, body = api_list(operator, q=q)
        assert status == 200
        api = sorted(item["slug"] for item in body["items"])
        page = logged_in(Client(), operator).get("/tenants/", {"q": q})
        assert page.status_code == 200
        console = sorted(t.slug for t in page.context["page"].items)
        out = StringIO()
        call_command("tenant", "list", "--q", q, "--json", stdout=out)
        command = sorted(t["slug"] for t in __import__("json").loads(out.getvalue()))
        admin = logged_in(Client(), admin_user).get("/admin/tenants/tenant/", {"q": q})
        assert admin.status_code == 200
        in_admin = sorted(t.slug for t in admin.context["cl"].result_list)
        preview = api_client(operator).post(
            "/tenants/bulk/suspend", {"filter": {"q": q}, "dry_run": True}
        )
        assert preview.status_code == 200
        in_bulk = sorted(r["slug"] for r in preview.json()["results"])
        assert api == console == command == in_admin == expected, (
            q,
            api,
            console,
            command,
            in_admin,
        )
        assert in_bulk == expected


def test_several_states_in_every_door(operator: Any) -> None:
    make("pend", "Pend")
    status, body = api_list(operator, state="pending,active")
    assert status == 200
    assert [i["slug"] for i in body["items"]] == ["pend"]
    out = StringIO()
    call_command("tenant", "list", "--state", "pending,active", "--json", stdout=out)
    assert [t["slug"] for t in __import__("json").loads(out.getvalue())] == ["pend"]


BAD_AUDIT_FILTERS = [
    ("tenant", "nobody-here", "--tenant"),
    ("type", "x" * 81, "--type"),
    ("since", "yesterday", "--since"),
]


@pytest.mark.parametrize(("key", "value", "flag"), BAD_AUDIT_FILTERS)
def test_a_bad_audit_filter_gets_one_message_in_every_door(
    admin_user: Any, key: str, value: str, flag: str
) -> None:
    api = api_message(admin_user, "/audit", {key: value})
    console = console_message(admin_user, "/audit/", {key: value})
    command = command_message("audit", "tail", flag, value)
    assert api == console == command, (api, console, command)
    assert key in api or value in api


def test_the_audit_feed_gives_the_same_events_in_every_door(admin_user: Any) -> None:
    make("acme", "Acme Corp")
    make("zenith", "Zenith Ltd")
    query = {"tenant": "acme", "type": "tenant"}
    api = [e["id"] for e in api_client(admin_user).get("/audit", query).json()["items"]]
    page = logged_in(Client(), admin_user).get("/audit/", query)
    console = [e.id for e in page.context["page"].items]
    out = StringIO()
    call_command("audit", "tail", "--tenant", "acme", "--type", "tenant", "--json", stdout=out)
    command = [__import__("json").loads(line)["id"] for line in out.getvalue().splitlines()]
    assert api == console == list(reversed(command))
    assert len(api) == 1
    admin = logged_in(Client(), admin_user).get("/admin/audit/event/", {"type": "tenant.created"})
    assert admin.status_code == 200
    assert admin.context["cl"].result_count == 2
