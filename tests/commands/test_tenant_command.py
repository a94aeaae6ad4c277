"""``manage.py tenant`` through call_command: the services' outcomes, exit codes and output."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import Event
from provisioning.models import Run
from tenants.management.commands import tenant as tenant_command
from tenants.models import Tenant

from ..admin.helpers import active_tenant, failed_tenant, new_tenant
from ..conftest import drive

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("tenant", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as info:
        run(*args)
    message = str(info.value)
    assert "\n" not in message, "a refusal is one line"
    assert info.value.returncode == 1
    return message


CREATE = ["create", "--slug", "acme", "--name", "Acme", "--plan", "starter"]
EMAIL = ["--admin-email", "ops@acme.test"]


# --- create -----------------------------------------------------------------------------------


def test_create_starts_provisioning_and_records_the_actor(fast_saga):
    out, _ = run(*CREATE, *EMAIL, "--actor", "alice")
    tenant = Tenant.objects.get(slug="acme")
    assert out.startswith(f"Created tenant acme ({tenant.id}): provisioning started.")
    assert tenant.state == "provisioning"
    assert Run.objects.get(pk=tenant.workflow_id).attempt == 1
    assert Event.objects.get(tenant_id=tenant.id, type="tenant.created").actor == "user:alice"


def test_the_default_actor_is_the_os_user(fast_saga, monkeypatch):
    monkeypatch.setattr(tenant_command.getpass, "getuser", lambda: "opsperson")
    run(*CREATE, *EMAIL, "--no-start")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.state == "pending"
    assert Event.objects.get(tenant_id=tenant.id).actor == "user:opsperson"


def test_create_json_prints_the_tenant(fast_saga):
    out, _ = run(*CREATE, *EMAIL, "--no-start", "--json")
    data = json.loads(out)
    assert data["slug"] == "acme"
    assert data["state"] == "pending"
    assert data["admin_email"] == "ops@acme.test"
    assert data["workflow_id"] is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--plan", "gold"], "plan: Choose one of starter, growth, enterprise"),
        (["--slug", "Bad--Slug"], "slug: Use lowercase letters"),
        (["--slug", "admin"], "slug: 'admin' is reserved"),
        (["--admin-email", "nope"], "admin_email: Enter a valid e-mail address"),
    ],
)
def test_create_with_bad_arguments_is_refused_in_one_line(fast_saga, args, words):
    base = {"--slug": "acme", "--name": "Acme", "--plan": "starter", "--admin-email": "a@x.test"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    message = refused("create", *[x for pair in base.items() for x in pair])
    assert message.startswith("Some fields are not valid")
    assert words in message
    assert not Tenant.objects.exists()


def test_create_names_every_missing_field(fast_saga):
    message = refused("create", "--slug", "acme")
    for field in ("name", "plan", "admin_email"):
        assert f"{field}: This field is required" in message


def test_create_refuses_a_slug_in_use(fast_saga):
    new_tenant("acme", start=False)
    message = refused(*CREATE, *EMAIL)
    assert "already used" in message
    assert Tenant.objects.count() == 1


def test_faults_that_look_like_json_must_be_json(fast_saga):
    message = refused(*CREATE, *EMAIL, "--faults", "{create")
    assert "faults: Not valid JSON (Expecting property name" in message
    assert "step=fault pairs separated by commas" in message  # and the other way to write them


def test_faults_are_refused_when_fault_injection_is_off(settings):
    settings.CONTROLPLANE_FAULT_INJECTION = False
    message = refused(*CREATE, *EMAIL, "--faults", '{"create_database": "fail"}')
    assert "Fault injection is not enabled" in message
    assert not Tenant.objects.exists()


def test_create_with_faults_fails_at_that_step(fast_saga):
    run(*CREATE, *EMAIL, "--faults", '{"create_database": "fail"}')
    tenant = Tenant.objects.get(slug="acme")
    assert Run.objects.get(pk=tenant.workflow_id).faults == {"create_database": "fail"}


# --- list and show ----------------------------------------------------------------------------


def test_list_filters_by_state_and_prints_json(fast_saga):
    active_tenant("alpha")
    new_tenant("bravo", start=False)
    failed_tenant("charlie")

    out, _ = run("list")
    lines = out.splitlines()
    assert lines[0].split() == ["SLUG", "STATE", "CONDITION", "PLAN", "CREATED", "ID"]
    assert [line.split()[0] for line in lines[1:]] == ["charlie", "bravo", "alpha"]

    out, _ = run("list", "--state", "active", "--json")
    assert [t["slug"] for t in json.loads(out)] == ["alpha"]

    out, _ = run("list", "--state", "active,failed", "--json")
    assert {t["slug"] for t in json.loads(out)} == {"alpha", "charlie"}

    out, _ = run("list", "--state", "pending", "--state", "failed", "--json")
    assert {t["slug"] for t in json.loads(out)} == {"bravo", "charlie"}

    out, _ = run("list", "--limit", "1", "--json")
    assert [t["slug"] for t in json.loads(out)] == ["charlie"]


def test_list_refuses_an_unknown_state_or_plan():
    assert refused("list", "--state", "sleeping").startswith("Unknown state sleeping")
    assert "Unknown plan 'gold'" in refused("list", "--plan", "gold")


def test_list_filters_by_plan(fast_saga):
    new_tenant("alpha", start=False)
    assert json.loads(run("list", "--plan", "growth", "--json")[0]) == []
    assert [t["slug"] for t in json.loads(run("list", "--plan", "starter", "--json")[0])] == [
        "alpha"
    ]


def test_wait_cannot_go_with_no_start(fast_saga):
    assert "cannot go with --no-start" in refused(*CREATE, *EMAIL, "--no-start", "--wait")
    assert not Tenant.objects.exists()


def test_list_says_when_there_is_nothing():
    assert run("list")[0] == "No tenants.\n"
    assert json.loads(run("list", "--json")[0]) == []


def test_show_by_slug_or_id_with_json(fast_saga):
    tenant = active_tenant("acme")
    out, _ = run("show", "acme")
    assert "state        active" in out
    assert "    suspend       available" in out
    assert "    decommission  available" in out
    assert "    resume        not now: Resume applies to suspended tenants only" in out

    data = json.loads(run("show", str(tenant.id), "--json")[0])
    assert data["id"] == str(tenant.id)
    assert data["state"] == "active"
    assert data["run"]["attempt"] == 1
    assert [s["name"] for s in data["run"]["steps"]][-1] == "mark_active"
    assert {a["kind"] for a in data["allocations"]} == {
        "storage",
        "identity",
        "database",
        "dns",
        "billing",
        "invite",
    }
    assert data["available_actions"] == ["suspend", "decommission"]
    assert data["recommended_action"] == "none"


def test_show_an_unknown_tenant_is_one_line():
    assert refused("show", "nobody") == "No tenant has the slug or id 'nobody'."


# --- operations -------------------------------------------------------------------------------


def test_suspend_and_resume(fast_saga):
    tenant = active_tenant("acme")
    out, _ = run("suspend", "acme", "--actor", "bob")
    assert out == "acme is suspended.\n"
    tenant.refresh_from_db()
    assert tenant.state == "suspended"
    assert Event.objects.get(tenant_id=tenant.id, type="tenant.suspended").actor == "user:bob"

    data = json.loads(run("resume", str(tenant.id), "--json")[0])
    assert data["state"] == "active"


def test_a_refused_operation_is_one_line_and_changes_nothing(fast_saga):
    tenant = active_tenant("acme")
    before = Event.objects.filter(tenant_id=tenant.id).count()
    message = refused("resume", "acme")
    assert message == "Resume applies to suspended tenants only; this one is active."
    tenant.refresh_from_db()
    assert tenant.state == "active"
    assert Event.objects.filter(tenant_id=tenant.id).count() == before


def test_retry_a_failed_tenant_with_faults(fast_saga):
    tenant = failed_tenant("acme")
    run("retry", "acme", "--faults", '{"invite_admin": "fail_once"}', "--actor", "carol")
    tenant.refresh_from_db()
    run_ = Run.objects.get(pk=tenant.workflow_id)
    assert (tenant.state, run_.attempt, run_.faults) == (
        "provisioning",
        2,
        {"invite_admin": "fail_once"},
    )
    drive(run_.id)
    tenant.refresh_from_db()
    assert tenant.state == "active"


def test_cancel_and_what_it_refuses_next(fast_saga):
    new_tenant("acme")
    run("cancel", "acme")
    tenant = Tenant.objects.get(slug="acme")
    assert Run.objects.get(pk=tenant.workflow_id).status == "cancelling"
    assert "already being cancelled" in refused("cancel", "acme")
    assert refused("reset", "acme").startswith("Reset is for a provisioning with a recorded error")


def test_decommission_needs_no_permission_from_the_shell(fast_saga):
    """The shell is trusted like the database; the audit feed still names who acted."""
    tenant = active_tenant("acme")
    run("decommission", "acme", "--actor", "dora")
    event = Event.objects.get(tenant_id=tenant.id, type="tenant.decommission_requested")
    assert event.actor == "user:dora"


def test_an_empty_actor_is_refused(fast_saga):
    active_tenant("acme")
    assert refused("suspend", "acme", "--actor", " ") == "--actor must name someone."


# --- waiting (the saga driven in-process between polls) ----------------------------------------


def test_wait_shows_progress_and_succeeds_when_active(fast_saga, monkeypatch):
    """Every poll's sleep runs one dispatched step, as a worker would between two polls."""

    def one_step(_seconds: float) -> None:
        tenant = Tenant.objects.get(slug="acme")
        drive(tenant.workflow_id, max_steps=1)

    monkeypatch.setattr(tenant_command.time, "sleep", one_step)
    out, err = run(*CREATE, *EMAIL, "--wait")
    assert "acme is active" in out
    progress = err.splitlines()
    assert progress[0].startswith("acme · provisioning · step 1/8 validate_request")
    assert any("step 4/8 create_database" in line for line in progress)
    assert progress[-1].startswith("acme · active")


def test_wait_fails_when_the_saga_ends_failed(fast_saga, monkeypatch):
    from ..conftest import drive_compensation

    def work(_seconds: float) -> None:
        tenant = Tenant.objects.get(slug="acme")
        if not drive(tenant.workflow_id, max_steps=1):
            drive_compensation(tenant.workflow_id)

    monkeypatch.setattr(tenant_command.time, "sleep", work)
    message = refused(*CREATE, *EMAIL, "--wait", "--faults", '{"create_database": "fail"}')
    assert message.startswith("acme ended failed, not active, after")
    assert "in create_database: injected failure in create_database" in message


def test_wait_gives_up_after_the_timeout(fast_saga, monkeypatch):
    monkeypatch.setattr(tenant_command.time, "sleep", lambda _s: None)
    message = refused(*CREATE, *EMAIL, "--wait", "--timeout", "0")
    assert message.startswith("Gave up waiting after 0s: acme is still provisioning")


def test_ctrl_c_while_waiting_stops_waiting_not_the_saga(fast_saga, monkeypatch):
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tenant_command.time, "sleep", interrupt)
    with pytest.raises(CommandError) as info:
        run(*CREATE, *EMAIL, "--wait")
    assert info.value.returncode == 130
    assert "Stopped waiting; the work goes on" in str(info.value)
    assert Tenant.objects.get(slug="acme").state == "provisioning"
