"""A bad-input corpus through every door: forms, API bodies and query parameters, commands.

Hypothesis strategies cover unicode of every category (but surrogates, which no HTTP request
or shell argument can carry), very long strings, control characters, SQL and HTML payloads,
wrong JSON types, huge numbers and deep nesting. For every input: no 5xx; a refusal is a 4xx
(or the form again, or a CommandError) with a message a person can read, and saves nothing; an
input that is accepted is stored exactly as sent. Which parameters exist is read from the code
(the OpenAPI document, the form's fields), so a new parameter is fuzzed without editing this.

Deterministic (``derandomize=True``) and bounded (a fixed number of examples per test), so it
runs in ``make test``; ``CONTROLPLANE_CORPUS_EXAMPLES`` raises the count for a longer hunt.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from io import StringIO
from typing import Any
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.tokens import issue_token
from audit.models import Event
from tenants.models import Tenant

from ..admin.helpers import active_tenant
from .crafted import CRAFTED_CURSORS

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("CONTROLPLANE_CORPUS_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
# What each run tried, for docs/security.md ("bad inputs tried, 5xx 0").
TRIED: Counter[str] = Counter()

# --- the corpus -----------------------------------------------------------------------------

SQL = [
    "' OR '1'='1",
    "'; DROP TABLE tenants_tenant; --",
    '" OR ""="',
    "1; SELECT pg_sleep(10)--",
    "admin'--",
    "%' AND 1=0 UNION SELECT username, password FROM auth_user --",
    "\\'; TRUNCATE audit_event; --",
]
HTML = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
    "{{ settings.SECRET_KEY }}",
    "{% debug %}",
    "<!--",
    "&lt;&#x3C;&#60;",
]
# Every category but Cs (lone surrogates cannot be encoded in a request or an argument).
any_unicode = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60)
control = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=20)
with_control = st.builds(
    lambda a, c, b: a + c + b, st.text(max_size=10), control, st.text(max_size=10)
)
very_long = st.builds(
    lambda unit, n: (unit * n)[: 300 + n * 7],
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=5),
    st.integers(min_value=300, max_value=5000),
)
payload = st.sampled_from(SQL + HTML)
bad_text = st.one_of(any_unicode, with_control, very_long, payload, st.just(""), st.just(" "))
huge_number = st.one_of(
    st.integers(min_value=2**63, max_value=10**400),
    st.integers(min_value=-(10**400), max_value=-(2**63)),
    st.sampled_from([1e308, -1e308, 5e-324]),
)
wrong_type = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    huge_number,
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


raw_body = st.one_of(
    st.integers(min_value=100, max_value=5_000).map(nested),
    st.integers(min_value=100, max_value=5_000).map(nested_object),
    st.sampled_from(
        [
            "NaN",
            "Infinity",
            '{"slug": NaN}',
            "{",
            "[]",
            "null",
            '"just a string"',
            "\x00",
            "{'single': 'quotes'}",
            '{"slug": "a", "slug": "b"}',
            "9" * 5000,
        ]
    ),
    st.binary(min_size=1, max_size=200).map(lambda b: b.decode("latin-1")),
)

# --- checks ---------------------------------------------------------------------------------


def no_5xx(response: Any, what: str) -> None:
    TRIED[what] += 1
    assert response.status_code < 500, f"{what}: {response.status_code} {response.content[:300]!r}"


def api_refusal(response: Any, what: str) -> None:
    """A 4xx from the API says why, in JSON."""
    no_5xx(response, what)
    if response.status_code >= 400:
        body = response.json()  # {"error": {"code", "message", "details"}}
        assert body["error"]["code"] and body["error"]["message"], f"{what}: {body}"


def state_of_the_world() -> tuple[int, int]:
    return Tenant.objects.count(), Event.objects.filter(tenant_id__isnull=False).count()


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def world(operator: Any, admin_user: Any) -> dict[str, Any]:
    tenant = active_tenant("corpus")
    _, raw = issue_token(user=admin_user, name="corpus")
    console = Client()
    console.force_login(admin_user)
    return {"tenant": tenant, "bearer": {"Authorization": f"Bearer {raw}"}, "console": console}


@functools.cache
def openapi() -> dict[str, Any]:
    from api.views import api

    return api.get_openapi_schema()


def api_operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in openapi()["paths"].items()
        for method, op in item.items()
        if method in {"get", "post"}
    ]


VALID_CREATE = {"slug": "ok-slug", "name": "A name", "plan": "starter", "admin_email": "a@b.test"}

# --- the console's forms --------------------------------------------------------------------


@FUZZ
@given(field=st.sampled_from(sorted(VALID_CREATE)), value=bad_text)
def test_console_create_form(world, field, value):
    before = state_of_the_world()
    form = {**VALID_CREATE, "slug": "console-new", field: value}
    response = world["console"].post("/tenants/new/", form)
    no_5xx(response, "console create form")
    if "\x00" in value:
        # Refused at the door for every form (controlplane/middleware.py).
        assert response.status_code == 400
        assert b"NUL characters are not allowed" in response.content
        assert state_of_the_world() == before
    elif response.status_code in (200, 422):
        # The form again, with the field's error; nothing saved.
        assert response.context["error_message"] or response.context["errors"], (
            f"{field}={value!r}: refused without a message"
        )
        assert state_of_the_world() == before
    else:
        # Accepted: stored exactly (after the trimming the contract asks for).
        assert response.status_code == 302
        tenant = Tenant.objects.get(slug=form["slug"].strip())
        if field != "admin_email":  # e-mail domains are normalised to lower case
            assert getattr(tenant, field) == form[field].strip()


@FUZZ
@given(username=bad_text, password=bad_text, n=st.integers(0, 10**6))
def test_login_form(roles, username, password, n):
    client = Client()
    response = client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=f"10.{n % 250}.{(n // 250) % 250}.{n % 7 + 1}",
    )
    no_5xx(response, "login form")
    assert "_auth_user_id" not in client.session
    if "\x00" in username + password:
        assert response.status_code == 400
        assert b"NUL characters are not allowed" in response.content
        return
    assert response.status_code in (200, 429)
    context = response.context
    assert context.get("locked_out") or context["form"].errors, "refused without a message"


CONSOLE_QUERIES = {
    "/tenants/": ["q", "state", "plan", "sort", "cursor"],
    "/audit/": ["type", "tenant", "actor", "since", "cursor", "format"],
}


@FUZZ
@given(
    page=st.sampled_from(sorted(CONSOLE_QUERIES)),
    data=st.data(),
    value=bad_text,
)
def test_console_query_parameters(world, page, data, value):
    name = data.draw(st.sampled_from(CONSOLE_QUERIES[page]))
    response = world["console"].get(page, {name: value})
    no_5xx(response, "console query parameter")
    tenant_page = world["console"].get(f"/tenants/{world['tenant'].pk}/", {"events": value})
    no_5xx(tenant_page, "console query parameter")


# --- crafted inputs that once answered 500 (issue 23) ---------------------------------------


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS)
def test_crafted_cursors_on_the_console_pages(world, cursor):
    for sort in ("newest", "slug", "name", "oldest"):
        response = world["console"].get("/tenants/", {"sort": sort, "cursor": cursor})
        assert response.status_code in (200, 400), (sort, response.status_code)
    for url, name in (("/audit/", "cursor"), (f"/tenants/{world['tenant'].pk}/", "events")):
        response = world["console"].get(url, {name: cursor})
        no_5xx(response, "crafted cursor")
        if "\x00" in cursor:
            assert response.status_code == 400
        else:
            # A cursor no page wrote shows the first page.
            assert response.status_code == 200


NUL_URLS = [
    "/admin/audit/event/?actor=%00",
    "/admin/audit/event/?type=%00",
    "/admin/audit/event/?tenant=a%00b",
    "/admin/tenants/tenant/?state=%00",
    "/admin/tenants/tenant/?q=%00",
    "/tenants/?q=%00",
    "/tenants/?sort=slug&cursor=%00",
    "/audit/?actor=x%00y",
    "/tenants/?a%00b=1",
]


@pytest.mark.parametrize("url", NUL_URLS)
def test_a_nul_in_any_query_parameter_is_a_clear_400(world, url):
    response = world["console"].get(url)
    assert response.status_code == 400
    assert b"NUL characters are not allowed" in response.content


def test_a_nul_in_a_form_field_is_a_clear_400_and_changes_nothing(world):
    before = state_of_the_world()
    form = {**VALID_CREATE, "slug": "nul-new", "name": "a\x00b"}
    response = world["console"].post("/tenants/new/", form)
    assert response.status_code == 400
    assert b"NUL characters are not allowed" in response.content
    response = world["console"].post(
        f"/admin/tenants/tenant/{world['tenant'].pk}/change/", {"name": "x\x00"}
    )
    assert response.status_code == 400
    assert state_of_the_world() == before


@pytest.mark.parametrize(
    "url", ["/api/v1/audit?cursor=%00", "/api/v1/tenants?q=%00", "/api/v1/audit?type=a%00"]
)
def test_a_nul_in_an_api_query_is_a_422_validation_error(world, url):
    response = Client().get(url, headers=world["bearer"])
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"] == {
        url.split("?")[1].split("=")[0]: ["NUL characters are not allowed."]
    }


@pytest.mark.parametrize("cursor", CRAFTED_CURSORS)
def test_crafted_cursors_on_the_api(world, cursor):
    tenant = world["tenant"].pk
    for url in ("/api/v1/tenants", "/api/v1/audit", f"/api/v1/tenants/{tenant}/events"):
        response = Client().get(url, {"cursor": cursor}, headers=world["bearer"])
        api_refusal(response, "crafted cursor")
        assert response.status_code == 422, (url, response.status_code)


# --- the API --------------------------------------------------------------------------------


def fill_path(path: str, tenant_id: Any) -> str:
    return path.replace("{tenant_id}", str(tenant_id))


@FUZZ
@given(data=st.data(), value=st.one_of(bad_text, wrong_type.map(json.dumps)))
def test_api_query_parameters(world, data, value):
    ops = [(m, p, op) for m, p, op in api_operations() if op.get("parameters")]
    method, path, op = data.draw(st.sampled_from(ops))
    params = [p for p in op["parameters"] if p["in"] in ("query", "path", "header")]
    param = data.draw(st.sampled_from(params))
    before = state_of_the_world()
    client = Client()
    url = fill_path(path, world["tenant"].pk)
    headers = dict(world["bearer"])
    query: dict[str, str] = {}
    if param["in"] == "path":
        url = path.replace("{" + param["name"] + "}", quote(value, safe=""))
    elif param["in"] == "query":
        query[param["name"]] = value
    else:
        # A header value must be latin-1 and one line to travel at all.
        headers[param["name"]] = (
            value.encode("latin-1", "replace")
            .decode("latin-1")
            .replace("\n", " ")
            .replace("\r", " ")
        )
    if method == "get":
        response = client.get(url, query, headers=headers)
    else:
        url = url + ("?" + "&".join(f"{k}={quote(v)}" for k, v in query.items()) if query else "")
        response = client.post(url, "{}", content_type="application/json", headers=headers)
    api_refusal(response, "API query/path/header parameter")
    if method == "get" or response.status_code >= 400:
        assert state_of_the_world()[0] == before[0]


@FUZZ
@given(data=st.data())
def test_api_bodies(world, data):
    ops = [(m, p, op) for m, p, op in api_operations() if m == "post"]
    method, path, op = data.draw(st.sampled_from(ops))
    schema_ref = (
        op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    )
    fields = sorted(resolve(schema_ref).get("properties", {})) or ["anything"]
    kind = data.draw(st.sampled_from(["field", "raw", "whole"]))
    if kind == "raw":
        body = data.draw(raw_body)
    elif kind == "whole":
        body = json.dumps(data.draw(wrong_type))
    else:
        field = data.draw(st.sampled_from(fields))
        value = data.draw(st.one_of(bad_text, wrong_type))
        good = {**VALID_CREATE, "slug": "api-new"} if path.endswith("/tenants") else {}
        body = json.dumps({**good, field: value})
    before = state_of_the_world()
    response = Client().post(
        fill_path(path, world["tenant"].pk),
        body,
        content_type="application/json",
        headers=world["bearer"],
    )
    api_refusal(response, "API body")
    if response.status_code >= 400:
        assert state_of_the_world() == before
    elif path.endswith("/tenants"):
        sent = json.loads(body)
        stored = Tenant.objects.get(pk=response.json()["id"])
        for key in ("slug", "name", "plan"):
            assert getattr(stored, key) == str(sent[key]).strip()


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not ref:
        return schema
    name = ref.rsplit("/", 1)[-1]
    return openapi()["components"]["schemas"][name]


# --- the commands ---------------------------------------------------------------------------

COMMAND_LINES = [
    (
        "tenant",
        "create",
        "--slug",
        "{v}",
        "--name",
        "N",
        "--plan",
        "starter",
        "--admin-email",
        "a@b.test",
    ),
    (
        "tenant",
        "create",
        "--slug",
        "cmd-new",
        "--name",
        "{v}",
        "--plan",
        "starter",
        "--admin-email",
        "a@b.test",
    ),
    (
        "tenant",
        "create",
        "--slug",
        "cmd-new",
        "--name",
        "N",
        "--plan",
        "{v}",
        "--admin-email",
        "a@b.test",
    ),
    (
        "tenant",
        "create",
        "--slug",
        "cmd-new",
        "--name",
        "N",
        "--plan",
        "starter",
        "--admin-email",
        "{v}",
    ),
    (
        "tenant",
        "create",
        "--slug",
        "cmd-new",
        "--name",
        "N",
        "--plan",
        "starter",
        "--admin-email",
        "a@b.test",
        "--faults",
        "{v}",
    ),
    ("tenant", "show", "{v}"),
    ("tenant", "suspend", "{v}"),
    ("tenant", "suspend", "corpus", "--actor", "{v}"),
    ("tenant", "list", "--state", "{v}"),
    ("tenant", "list", "--plan", "{v}"),
    ("tenant", "list", "--limit", "{v}"),
    ("audit", "tail", "--tenant", "{v}"),
    ("audit", "tail", "--type", "{v}"),
    ("audit", "tail", "--limit", "{v}"),
    ("audit", "verify", "--tenant", "{v}"),
    ("create_api_token", "{v}", "--name", "x"),
    ("create_api_token", "ada", "--name", "{v}"),
    ("create_api_token", "ada", "--name", "y", "--expires-in", "{v}"),
    ("create_api_token", "--revoke", "{v}"),
    ("tenant", "approve", "{v}"),
    ("tenant", "withdraw", "{v}"),
    ("tenant", "approve", "corpus", "--reason", "{v}"),
    ("tenant", "bulk", "suspend", "--state", "{v}"),
    ("tenant", "bulk", "suspend", "--condition", "{v}"),
    ("tenant", "bulk", "suspend", "--q", "{v}"),
    ("tenant", "bulk", "suspend", "--state", "active", "--reason", "{v}"),
    ("tenant", "bulk", "suspend", "--state", "active", "--limit", "{v}"),
]


@FUZZ
@given(line=st.sampled_from(COMMAND_LINES), value=st.one_of(bad_text, huge_number.map(str)))
def test_command_arguments(world, line, value):
    # A shell argument is a C string: it cannot hold NUL.
    value = value.replace("\x00", "")
    args = [value if a == "{v}" else a for a in line]
    before = state_of_the_world()
    TRIED["command argument"] += 1
    try:
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    except CommandError as exc:
        assert str(exc).strip(), f"{args}: a refusal without a message"
        assert state_of_the_world()[0] == before[0]
    except SystemExit as exc:  # argparse: a bad --limit is refused with usage on stderr
        assert exc.code == 2
        assert state_of_the_world() == before


def test_report_the_corpus_size():
    """Runs last in this module: what was tried, for docs/security.md."""
    total = sum(TRIED.values())
    print(f"\nbad-input corpus: {total} inputs tried, 0 answered 5xx: {dict(TRIED)}")  # noqa: T201


def test_a_too_long_actor_is_refused_by_the_command(world):
    # Found by the corpus: the audit feed's actor column holds 200 characters.
    with pytest.raises(CommandError, match="at most 150 printable"):
        call_command("tenant", "suspend", "corpus", "--actor", "x" * 500, stdout=StringIO())
    assert not Event.objects.filter(type="tenant.suspended").exists()
