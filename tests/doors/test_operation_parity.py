"""Door parity: for every operation of the table and every situation it meets (each state, with
and without a live run, a stalled run, a cancelled one, a recorded error, and a user without the
permission), the console, the API, the admin and the ``tenant`` command show the same
availability and reason, and give the same outcome when asked (a dry run: the preview, or the
same refusal), since all four read ``tenants.operations``.

The command acts as a trusted shell user (``Actor.shell``): it has no "permission missing"
situation, so for that persona three doors are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.test import Client

from tenants.operations import OPERATIONS

from ..api.conftest import client_for

pytestmark = pytest.mark.django_db

SITUATIONS = [
    "pending",  # no run
    "pending_error",  # a recorded error (a release that kept failing)
    "provisioning",  # a live run
    "stalled",  # a live run the watchdog flagged
    "cancelled",  # pending after a cancelled run
    "active",
    "failed",
    "suspended",
    "decommissioned",
    "updating",  # a plan change at work
    "paused",  # a live run an operator paused
]


def other_plan(tenant: Any) -> str:
    return "enterprise" if tenant.plan != "enterprise" else "starter"


def options(name: str, tenant: Any) -> dict[str, str]:
    """What an operation with arguments of its own is asked with (change_plan: another plan)."""
    return {"plan": other_plan(tenant)} if OPERATIONS[name].options else {}


def _query(name: str, tenant: Any) -> str:
    given = options(name, tenant)
    return "".join(f"{'&' if i else '?'}{k}={v}" for i, (k, v) in enumerate(given.items()))


@dataclass(frozen=True)
class Seen:
    """An operation as one door shows it, and what asking for it (a dry run) gives."""

    available: bool
    permitted: bool
    reason: str
    outcome: str  # "accepted", "refused" or "forbidden"
    message: str  # the refusal's sentence ("" when accepted)


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def via_api(api: Any, tenant: Any) -> dict[str, Seen]:
    detail = api.get(f"/tenants/{tenant.pk}")
    assert detail.status_code == 200
    seen = {}
    for action in detail.json()["actions"]:
        answer = api.post(
            f"/tenants/{tenant.pk}/{action['name']}",
            {"dry_run": True, **options(action["name"], tenant)},
        )
        if answer.status_code == 200:
            outcome, message = "accepted", ""
        else:
            assert answer.status_code in (403, 409), answer.content
            outcome = "forbidden" if answer.status_code == 403 else "refused"
            message = answer.json()["error"]["message"]
        seen[action["name"]] = Seen(
            action["available"], action["permitted"], action["reason"], outcome, message
        )
    return seen


def via_console(client: Client, tenant: Any) -> dict[str, Seen]:
    page = client.get(f"/tenants/{tenant.pk}/")
    assert page.status_code == 200
    seen = {}
    for action in page.context["actions"]:
        answer = client.get(action["url"] + _query(action["name"], tenant))
        if answer.status_code == 200:
            outcome, message = "accepted", ""
        elif answer.status_code == 403:
            outcome, message = "forbidden", ""
        else:
            assert answer.status_code == 302, answer.status_code
            said = _messages(answer)[-1]
            label = OPERATIONS[action["name"]].label
            prefix = f"{label} is not possible now: "
            assert said.startswith(prefix), said
            outcome, message = "refused", said.removeprefix(prefix)
        seen[action["name"]] = Seen(
            action["available"], action["permitted"], action["reason"], outcome, message
        )
    return seen


def via_admin(client: Client, tenant: Any) -> dict[str, Seen]:
    page = client.get(f"/admin/tenants/tenant/{tenant.pk}/change/")
    assert page.status_code == 200
    buttons = page.context["tenant_actions"] + page.context["unavailable_actions"]
    seen = {}
    for button in buttons:
        answer = client.get(button.url + _query(button.name, tenant))
        if answer.status_code == 200:
            outcome, message = "accepted", ""
        else:
            assert answer.status_code == 302, answer.status_code
            said = _messages(answer)[-1]
            prefix = f"{button.label}: "
            assert said.startswith(prefix), said
            message = said.removeprefix(prefix)
            outcome = "forbidden" if message.startswith("You do not have permission") else "refused"
            if outcome == "forbidden":
                message = ""
        # The admin shows one flag (offered) and the reason; availability and permission are
        # read back from the reason, as an operator would.
        seen[button.name] = Seen(button.offered, button.offered, button.reason, outcome, message)
    return seen


def via_command(tenant: Any) -> dict[str, Seen]:
    out = StringIO()
    call_command("tenant", "show", str(tenant.pk), "--json", stdout=out)
    import json

    seen = {}
    for action in json.loads(out.getvalue())["actions"]:
        try:
            given = [f"--{k}={v}" for k, v in options(action["name"], tenant).items()]
            command = action["name"].replace("_", "-")
            call_command("tenant", command, str(tenant.pk), "--dry-run", *given, stdout=StringIO())
        except CommandError as exc:
            outcome, message = "refused", str(exc)
        else:
            outcome, message = "accepted", ""
        seen[action["name"]] = Seen(
            action["available"], action["permitted"], action["reason"], outcome, message
        )
    return seen


def _same(a: Seen, b: Seen, *, one_flag: bool = False) -> bool:
    if one_flag:  # the admin: offered = available and permitted
        flags = a.available and a.permitted
        if (b.available, b.reason) != (flags, a.reason):
            return False
    elif (a.available, a.permitted, a.reason) != (b.available, b.permitted, b.reason):
        return False
    if a.outcome != b.outcome:
        return False
    # A door may put the sentence in its own frame; the sentence itself is the same.
    return a.message.rstrip(".") in b.message or b.message.rstrip(".") in a.message


@pytest.mark.parametrize("situation", SITUATIONS)
def test_every_door_gives_the_same_availability_reason_and_outcome(
    make_state: Any, admin_user: Any, viewer: Any, situation: str
) -> None:
    tenant = make_state(situation)
    for user in (admin_user, viewer):
        api = via_api(client_for(user, name=f"{user.username}-parity"), tenant)
        browser = Client()
        browser.force_login(user)
        console = via_console(browser, tenant)
        admin = via_admin(browser, tenant)
        assert list(api) == list(console) == list(OPERATIONS)
        assert set(admin) == set(OPERATIONS)  # offered first, then the others
        for name in OPERATIONS:
            assert _same(api[name], console[name]), (situation, user.username, name, api, console)
            assert _same(api[name], admin[name], one_flag=True), (
                situation,
                user.username,
                name,
                api[name],
                admin[name],
            )
            if not api[name].available:
                # What the detail says and what asking gives are one sentence.
                assert api[name].outcome in ("refused", "forbidden")
        if user is admin_user:
            shell = via_command(tenant)
            for name in OPERATIONS:
                assert _same(api[name], shell[name]), (situation, name, api[name], shell[name])
