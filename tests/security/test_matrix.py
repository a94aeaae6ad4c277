"""The authorization matrix, generated from the code and checked against one readable table.

Surfaces, found by walking the code rather than listed by hand:

- every URL pattern of the project (the resolver, admin and API included), through the
  concrete requests in ``matrix_table.TABLE``: each pattern must be reached by at least one row;
- every API operation of the OpenAPI document (method and path);
- every admin bulk action of every registered ModelAdmin;
- every management command path of the project's commands (subcommands included).

Each web row is asked by nine callers: anonymous, a user with no role, viewer, operator, admin
(session), and a bearer token of a no-role user and of each role. The answer is reduced to an
outcome (``ok``, ``login``, ``refused`` for a 302 that only says "no permission", or the status
code) and compared with the table. A surface without a row, or a row for a surface that no
longer exists, fails the test: a new endpoint needs a decision written down.

Commands run in a shell that is trusted like the database (``Actor.shell``); their rows say so
and the test proves only that the table names every command path.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.core.management import get_commands, load_command_class
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from api.models import ApiToken
from api.tokens import issue_token
from audit.models import Event
from observability.consumers import record_consumers
from observability.pulse import record_watchdog_pass
from provisioning.models import Allocation, ResourceFinding, Run
from tenants.operations import perform
from tenants.schedules import schedule_operation
from webhooks.models import Delivery, Subscription

from ..admin.helpers import SETUP as SHELL
from ..admin.helpers import active_tenant
from ..conftest import ROOT, make_user
from .matrix_table import COMMANDS, PERSONAS, TABLE, markdown, parse_table

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("tenants", "api", "audit", "provisioning", "console", "webhooks", "observability")
STATS: dict[str, int] = {}


# --- the surfaces, from the code --------------------------------------------------------------


def url_patterns() -> set[str]:
    """Every URL pattern as its full route string (prefixes joined)."""

    def join(prefix: str, pattern: str) -> str:
        # As Django joins them in ResolverMatch.route: a nested regex loses its "^".
        return prefix + (pattern[1:] if prefix and pattern.startswith("^") else pattern)

    def walk(resolver: URLResolver, prefix: str) -> Iterator[str]:
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                yield from walk(p, join(prefix, str(p.pattern)))
            elif isinstance(p, URLPattern):
                yield join(prefix, str(p.pattern))

    return set(walk(get_resolver(), ""))


def matched_route(path: str) -> str:
    return resolve(path.split("?")[0]).route


def openapi_operations() -> set[tuple[str, str]]:
    from api.views import api

    schema = api.get_openapi_schema()
    return {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def admin_actions() -> set[str]:
    """``app.model:action`` for every action any registered ModelAdmin may offer."""
    found = set()
    for model, model_admin in admin.site._registry.items():
        names = {a if isinstance(a, str) else a.__name__ for a in (model_admin.actions or [])}
        superuser = User(is_superuser=True, is_staff=True, is_active=True)
        request = type("R", (), {"user": superuser, "GET": {}, "POST": {}})()
        names |= set(model_admin.get_actions(request))
        for name in names:
            found.add(f"{model._meta.app_label}.{model._meta.model_name}:{name}")
    return found


def command_paths() -> set[str]:
    """``command`` or ``command subcommand`` for the project's own management commands."""
    paths = set()
    for name, app in get_commands().items():
        if not any(app == a or app.endswith("." + a) for a in PROJECT_APPS):
            continue
        parser = load_command_class(app, name).create_parser("manage.py", name)
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs:
            paths |= {f"{name} {sub}" for sub in subs[0].choices}
        else:
            paths.add(name)
    return paths


# --- the callers and the world ------------------------------------------------------------------


@pytest.fixture
def world(roles: None) -> dict[str, Any]:
    people = {
        "norole": make_user("olga", None),
        "viewer": make_user("vera", "viewer"),
        "operator": make_user("otto", "operator"),
        "admin": make_user("ada", "admin"),
    }
    tokens = {
        f"t:{role}": issue_token(user=user, name=f"matrix-{role}")[1]
        for role, user in people.items()
    }
    tenant = active_tenant("matrix")
    # A decommission of another tenant waiting for approval, asked at the shell (so no persona
    # is its author): the approve / withdraw rows decide it (the first admin's approval wins;
    # later decisions are the business rule's 409).
    with override_settings(CONTROLPLANE_DECOMMISSION_APPROVAL=True):
        approval = perform(
            "decommission", tenant_id=active_tenant("matrix-approval").pk, actor=SHELL
        ).approval
    # A suspend of the tenant scheduled at the shell for tomorrow: the admin's schedule pages
    # and its cancel action (the API's rows name a schedule no one has: "schedule" below).
    admin_schedule = schedule_operation(
        "suspend", tenant_id=tenant.pk, actor=SHELL, at=timezone.now() + timedelta(days=1)
    )
    # One row of each of axes' models, so their admin pages answer for a real object.
    when = timezone.now()
    attempt = AccessAttempt.objects.create(
        username="someone",
        ip_address="10.1.1.1",
        user_agent="ua",
        attempt_time=when,
        failures_since_start=1,
        get_data="",
        post_data="",
        http_accept="",
        path_info="/",
    )
    access_log = AccessLog.objects.create(
        username="someone",
        ip_address="10.1.1.1",
        user_agent="ua",
        attempt_time=when,
        http_accept="",
        path_info="/",
    )
    failure_log = AccessFailureLog.objects.create(
        username="someone",
        ip_address="10.1.1.1",
        user_agent="ua",
        attempt_time=when,
        http_accept="",
        path_info="/",
        locked_out=False,
    )
    run = Run.objects.filter(tenant_id=tenant.pk).first()
    allocation = Allocation.objects.filter(tenant_id=tenant.pk).first()
    event = Event.objects.filter(tenant_id=tenant.pk).first()
    # A webhook subscription with one delivery, and a reconciliation finding.
    subscription = Subscription.objects.create(
        url="https://hooks.example.test/matrix", events=["tenant"], secret="s" * 32
    )
    delivery = Delivery.objects.create(
        subscription=subscription, event=event, event_type=event.type, next_attempt_at=when
    )
    finding = ResourceFinding.objects.create(
        problem=ResourceFinding.Problem.choices[0][0],
        kind=allocation.kind,
        external_id="matrix-finding",
        tenant_id=tenant.pk,
    )
    # The watchdog has passed and workers consume every queue: /readyz answers 200 (its 503
    # would say nothing about access).
    record_watchdog_pass()
    record_consumers(worker="celery@matrix", queues=list(settings.CONTROLPLANE_QUEUES))
    ids = {
        "tenant": tenant.pk,
        "tenant_id": tenant.pk,
        "tenant_slug": tenant.slug,
        "run": run.pk,
        "allocation": allocation.pk,
        "event": event.pk,
        "apitoken": ApiToken.objects.get(name="matrix-viewer").pk,
        "user": people["viewer"].pk,
        "group": Group.objects.get(name="viewer").pk,
        "tenant_ct": ContentType.objects.get_for_model(tenant).pk,
        "accessattempt": attempt.pk,
        "accesslog": access_log.pk,
        "accessfailurelog": failure_log.pk,
        "subscription": subscription.pk,
        "delivery": delivery.pk,
        "resourcefinding": finding.pk,
        # No schedule has it: the rows ask who reaches the lookup (404) and who is refused first.
        "schedule": "00000000-0000-4000-8000-00000000000a",
        "schedule_id": "00000000-0000-4000-8000-00000000000a",
        "approval": approval.pk,
        "approval_id": approval.pk,
        "admin_schedule": admin_schedule.pk,
    }
    return {"people": people, "tokens": tokens, "ids": ids}


def client_for(persona: str, world: dict[str, Any]) -> tuple[Client, dict[str, str]]:
    client = Client()
    if persona in world["people"]:
        client.force_login(world["people"][persona])
    headers = {}
    if persona.startswith("t:"):
        headers["Authorization"] = f"Bearer {world['tokens'][persona]}"
    return client, headers


REFUSAL = re.compile(r"permission|No action selected", re.IGNORECASE)


def outcome(response: Any, *, bulk_action: bool = False) -> str:
    status = response.status_code
    if status >= 500:
        return "5xx"
    if status in (301, 302, 303) and "/login/" in response.get("Location", ""):
        return "login"
    if status in (401, 403, 404, 405):
        return str(status)
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    if any(REFUSAL.search(m) for m in messages):
        return "refused"
    if bulk_action and not messages and (status != 200 or _is_change_list(response)):
        # The admin shows the list again without a word when the action is not one the user
        # is offered: nothing was done. (Another page is the action's own: the tenants' bulk
        # actions first show their dry run for confirmation.)
        return "refused"
    return "ok"


def _is_change_list(response: Any) -> bool:
    names = [t.name or "" for t in getattr(response, "templates", None) or []]
    return any(name.endswith("change_list.html") for name in names)


def ask(row: Any, persona: str, world: dict[str, Any], serial: int) -> str:
    client, headers = client_for(persona, world)
    path = row.path.format(**world["ids"])
    if row.method == "GET":
        response = client.get(path, headers=headers)
    elif row.method == "DELETE":
        response = client.delete(path, headers=headers)
    else:
        body = row.body(world["ids"], serial)
        if row.door == "api":
            response = client.post(
                path, json.dumps(body or {}), content_type="application/json", headers=headers
            )
        else:
            response = client.post(path, body or {}, headers=headers)
    return outcome(response, bulk_action=row.door == "admin-action")


# --- the tests ----------------------------------------------------------------------------------


def test_every_url_pattern_has_rows_and_every_row_a_pattern():
    rows = parse_table(TABLE)
    reached = {matched_route(row.path.format_map(_Any())) for row in rows if row.door != "command"}
    missing = url_patterns() - reached
    assert not missing, f"URL patterns with no row in matrix_table.TABLE: {sorted(missing)}"


def test_every_api_operation_has_a_row():
    rows = parse_table(TABLE)
    in_table = {(r.method, r.template) for r in rows if r.door == "api"}
    missing = openapi_operations() - in_table
    assert not missing, f"API operations with no row in matrix_table.TABLE: {sorted(missing)}"


def test_every_admin_action_has_a_row():
    rows = parse_table(TABLE)
    in_table = {r.action for r in rows if r.door == "admin-action"}
    found = admin_actions()
    assert found - in_table == set(), f"admin actions with no row: {sorted(found - in_table)}"
    assert in_table - found == set(), f"rows for admin actions that are gone: {in_table - found}"


def test_every_command_path_has_a_row():
    found = command_paths()
    assert found - set(COMMANDS) == set(), f"command paths with no row: {found - set(COMMANDS)}"
    assert set(COMMANDS) - found == set(), (
        f"rows for commands that are gone: {set(COMMANDS) - found}"
    )


def test_the_matrix(world):
    rows = parse_table(TABLE)
    wrong = []
    cases = 0
    for serial, row in enumerate(rows):
        if row.door == "command":
            continue
        for persona, expected in zip(PERSONAS, row.expected, strict=True):
            if row.path == "/readyz":
                # Stamped again right before: a slow machine can spend more than the allowed
                # three watchdog intervals on the rows before this one (a 503 for staleness
                # would say nothing about access).
                record_watchdog_pass()
                record_consumers(worker="celery@matrix", queues=list(settings.CONTROLPLANE_QUEUES))
            got = ask(row, persona, world, serial)
            cases += 1
            if got != expected:
                wrong.append(
                    f"{row.method} {row.path} as {persona}: expected {expected}, got {got}"
                )
    STATS["cases"] = cases
    STATS["wrong"] = len(wrong)
    print(f"\nauthorization matrix: {cases} cases, {len(wrong)} wrong")  # noqa: T201
    assert not wrong, "\n".join(wrong)


class _Any(dict):
    """Fills every placeholder of a row's path with a value of the right shape for resolving."""

    def __missing__(self, key: str) -> str:
        return {
            "tenant": "00000000-0000-4000-8000-000000000000",
            "schedule": "00000000-0000-4000-8000-000000000000",
            "approval": "00000000-0000-4000-8000-000000000000",
            "tenant_ct": "1",
            "tenant_slug": "x",
        }.get(key, "1")


def test_docs_show_the_current_table():
    """docs/security.md carries the table as Markdown (``matrix_table.markdown()``)."""
    docs = (ROOT / "docs" / "security.md").read_text()
    assert markdown() in docs, "docs/security.md is out of date: paste matrix_table.markdown()"
