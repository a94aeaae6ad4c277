"""The commands as an operator runs them: a real ``manage.py`` process on the test database.

What only a real process shows: the exit status, that a refusal is one line on stderr with no
traceback, that ``--json`` on stdout parses, and that Ctrl-C ends ``audit tail --follow``
cleanly. The data is committed (``transactional_db``) so the child process sees it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from audit.models import Event
from tenants.models import Tenant
from tenants.services import suspend_tenant

from ..admin.helpers import SETUP, active_tenant
from ..conftest import ROOT, subprocess_env, wait_for

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def manage(settings: Any, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=subprocess_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_refusal(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("CommandError: ")
    assert words in lines[0]


CREATE = ["tenant", "create", "--slug", "acme", "--name", "Acme", "--plan", "starter"]


def test_create_list_show_as_json(fast_saga):
    result = manage(fast_saga, *CREATE, "--admin-email", "ops@acme.test", "--no-start", "--json")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["state"] == "pending"
    tenant = Tenant.objects.get(pk=created["id"])
    assert Event.objects.get(tenant_id=tenant.id).actor.startswith("user:")

    listed = manage(fast_saga, "tenant", "list", "--state", "pending", "--json")
    assert listed.returncode == 0
    assert [t["slug"] for t in json.loads(listed.stdout)] == ["acme"]

    shown = manage(fast_saga, "tenant", "show", "acme", "--json")
    assert shown.returncode == 0
    detail = json.loads(shown.stdout)
    assert detail["available_actions"] == ["retry", "decommission"]
    assert detail["recommended_action"] == "retry"


def test_bad_arguments_exit_non_zero_in_one_line(fast_saga):
    result = manage(fast_saga, *CREATE, "--admin-email", "a@x.test", "--plan", "gold")
    assert_one_line_refusal(result, "plan: Choose one of starter, growth, enterprise")
    result = manage(fast_saga, *CREATE, "--admin-email", "a@x.test", "--slug", "9lives")
    assert_one_line_refusal(result, "slug: ")
    assert not Tenant.objects.exists()


def test_a_refused_operation_exits_non_zero_in_one_line(fast_saga):
    active_tenant("acme")
    result = manage(fast_saga, "tenant", "resume", "acme")
    assert_one_line_refusal(result, "Resume applies to suspended tenants only")
    assert Tenant.objects.get(slug="acme").state == "active"

    result = manage(fast_saga, "tenant", "suspend", "nobody")
    assert_one_line_refusal(result, "No tenant has the slug or id 'nobody'.")


def test_an_operation_records_the_actor(fast_saga):
    tenant = active_tenant("acme")
    result = manage(fast_saga, "tenant", "suspend", "acme", "--actor", "erin")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "acme is suspended.\n"
    assert Event.objects.get(tenant_id=tenant.id, type="tenant.suspended").actor == "user:erin"


def test_audit_tail_json_and_verify(fast_saga):
    active_tenant("acme")
    tail = manage(fast_saga, "audit", "tail", "--json", "--tenant", "acme", "-n", "3")
    assert tail.returncode == 0, tail.stderr
    rows = [json.loads(line) for line in tail.stdout.splitlines()]
    assert [r["type"] for r in rows][-1] == "tenant.provisioning.completed"

    verify = manage(fast_saga, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("Audit chains intact:")


def test_audit_verify_exits_non_zero_on_a_broken_chain(fast_saga):
    from django.db.models import F

    from audit.models import EventChain

    tenant = active_tenant("acme")
    EventChain.objects.filter(tenant_id=tenant.id).update(length=F("length") + 1)
    result = manage(fast_saga, "audit", "verify")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(f"tenant {tenant.id} event #")
    assert lines[-1].startswith("CommandError: 1 problem(s) in the audit chains")


def test_audit_tail_follow_ends_cleanly_on_ctrl_c(fast_saga):
    tenant = active_tenant("acme")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "audit", "tail", "--follow", "--json", "-n", "1"],
        cwd=ROOT,
        env=subprocess_env(fast_saga),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # An operator's terminal delivers Ctrl-C. A suite started in the background by a
        # non-interactive shell (`cmd &`) inherits SIGINT ignored, and so would the command:
        # give it the terminal's default back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        first = json.loads(proc.stdout.readline())  # the window: blocks until printed
        assert first["type"] == "tenant.provisioning.completed"
        suspend_tenant(tenant_id=tenant.id, actor=SETUP)
        followed = json.loads(proc.stdout.readline())
        assert followed["type"] == "tenant.suspended"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err


# --- with a real worker: --wait follows the saga --------------------------------------------------


@pytest.mark.worker
def test_create_wait_shows_progress_until_active(celery_worker, settings):
    result = manage(
        settings, *CREATE, "--admin-email", "ops@acme.test", "--wait", "--json", timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"] == "active"
    progress = result.stderr.splitlines()
    assert progress[0].startswith("acme · provisioning · step ")
    assert progress[-1].startswith("acme · active · ")


@pytest.mark.worker
def test_create_wait_exits_non_zero_when_the_saga_fails(celery_worker, settings):
    result = manage(
        settings,
        *CREATE,
        "--admin-email",
        "ops@acme.test",
        "--wait",
        "--faults",
        '{"configure_dns": "fail"}',
        timeout=120,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("CommandError: acme ended failed, not active, after ")
    assert "in configure_dns" in last
    wait_for(lambda: Tenant.objects.get(slug="acme").state == "failed", what="failed")

    # And retry --wait brings it to active (faults apply to their own run only).
    retry = manage(settings, "tenant", "retry", "acme", "--wait", timeout=120)
    assert retry.returncode == 0, retry.stderr
    assert "acme is active" in retry.stdout
