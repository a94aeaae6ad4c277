"""``manage.py audit tail|verify`` through call_command."""

from __future__ import annotations

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from audit.keys import current_key
from audit.management.commands import audit as audit_command
from audit.models import Event, EventChain
from tenants.services import suspend_tenant

from ..admin.helpers import SETUP, active_tenant, new_tenant

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("audit", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def types_in(out: str) -> list[str]:
    # Each line opens with the moment in the one format for people: 2026-12-05 19:04:05 UTC.
    lines = [line for line in out.splitlines() if line.strip()]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  ", line) for line in lines), lines
    return [line.split()[3] for line in lines]


def test_tail_prints_the_newest_window_oldest_first(fast_saga):
    tenant = active_tenant("acme")
    newest = list(Event.objects.filter(tenant_id=tenant.id).order_by("-id")[:5])
    out, _ = run("tail", "--limit", "5")
    assert types_in(out) == [e.type for e in reversed(newest)]
    assert types_in(out)[-1] == "tenant.provisioning.completed"
    assert all(" acme " in line for line in out.splitlines())


def test_tail_filters_by_tenant_and_type_prefix(fast_saga):
    acme = active_tenant("acme")
    new_tenant("beta", start=False)

    out, _ = run("tail", "--tenant", "beta")
    assert types_in(out) == ["tenant.created"]

    out, _ = run("tail", "--tenant", str(acme.id), "--type", "tenant.resource", "-n", "100")
    assert types_in(out) == ["tenant.resource.allocated"] * 6

    # A dotted prefix matches whole segments only, and a whole type matches itself.
    out, _ = run("tail", "--type", "tenant.provisioning.complete")
    assert out == ""
    out, _ = run("tail", "--type", "tenant.provisioning.completed")
    assert types_in(out) == ["tenant.provisioning.completed"]


def test_tail_json_is_one_object_per_line(fast_saga):
    tenant = active_tenant("acme")
    out, _ = run("tail", "--json", "--limit", "3")
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 3
    assert set(rows[0]) == {"id", "type", "occurred_at", "tenant_id", "run_id", "actor", "data"}
    assert rows[-1]["type"] == "tenant.provisioning.completed"
    assert rows[-1]["tenant_id"] == str(tenant.id)
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)


def test_tail_of_an_unknown_tenant_is_one_line():
    with pytest.raises(CommandError, match="^No tenant has the slug or id 'nobody'.$"):
        run("tail", "--tenant", "nobody")


def test_follow_prints_new_events_until_ctrl_c(fast_saga, monkeypatch):
    tenant = active_tenant("acme")
    polls = []

    def poll(_seconds: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            suspend_tenant(tenant_id=tenant.id, actor=SETUP)  # happens while following
        elif len(polls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(audit_command.time, "sleep", poll)
    out, _ = run("tail", "--follow", "--limit", "1", "--tenant", "acme")
    # The window, then the new event exactly once (the look-back never repeats a line).
    assert types_in(out) == ["tenant.provisioning.completed", "tenant.suspended"]


def test_follow_catches_an_event_committed_late_with_a_lower_id(fast_saga, monkeypatch):
    """An id taken by a transaction that commits after a higher id was printed is not lost.

    Ids come from a sequence at insert time, so commits can land out of id order; explicit
    ids stand in for two such transactions here.
    """
    tenant = new_tenant("acme", start=False)
    first = Event.objects.get(tenant_id=tenant.id)

    def event(event_id: int, seq: int) -> Event:
        return Event.objects.create(
            id=event_id,
            type="tenant.suspended",
            occurred_at=timezone.now(),
            tenant_id=tenant.id,
            actor="user:test",
            data={"n": seq},
            seq=seq,
            digest="0" * 64,
        )

    event(first.id + 100, 2)  # committed first, higher id
    polls = []

    def poll(_seconds: float) -> None:
        polls.append(1)
        if len(polls) == 1:
            event(first.id + 50, 3)  # commits later, lower id
        elif len(polls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(audit_command.time, "sleep", poll)
    out, _ = run("tail", "--follow", "--json", "--limit", "1")
    assert [json.loads(line)["data"] for line in out.splitlines() if line.strip()] == [
        {"n": 2},
        {"n": 3},
    ]


def test_verify_passes_on_intact_chains(fast_saga):
    active_tenant("acme")
    new_tenant("beta", start=False)
    out, _ = run("verify")
    checked = Event.objects.count()
    assert out == f"Audit chains intact: {checked} events in 2 tenant chain(s) verified.\n"


def test_verify_reports_one_line_per_problem(fast_saga):
    acme = active_tenant("acme")
    beta = new_tenant("beta", start=False)
    # A chain head that claims one more event than there is: an event went missing.
    EventChain.objects.filter(tenant_id=acme.id).update(length=F("length") + 1)
    # An event slipped in with a made-up digest: rewritten or inserted out of turn.
    Event.objects.create(
        type="tenant.suspended",
        occurred_at=timezone.now(),
        tenant_id=beta.id,
        actor="user:mallory",
        data={},
        seq=2,
        digest="0" * 64,
        key_id=current_key().key_id,
    )
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("audit", "verify", stdout=out, stderr=err)
    assert str(info.value).startswith("3 problem(s) in the audit chains")
    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert any(line.startswith(f"tenant {acme.id} ") and "chain says" in line for line in lines)
    assert any(
        f"tenant {beta.id} event #2: event #2 (tenant.suspended) was altered" == line
        for line in lines
    )
    assert out.getvalue() == ""

    # One tenant's chain alone.
    with pytest.raises(CommandError, match="^1 problem"):
        run("verify", "--tenant", "acme")
