"""The audit feed is append-only and its hash chains catch any rewrite or gap."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AppendOnlyError, Event
from audit.services import record_event, verify_chains

from .. import factories as f

pytestmark = pytest.mark.django_db


def test_events_cannot_be_changed_or_deleted_through_the_orm(fast_saga):
    tenant = f.active_tenant()
    event = Event.objects.filter(tenant_id=tenant.id).first()
    event.data = {"forged": True}
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(tenant_id=tenant.id).update(actor="someone-else")
    with pytest.raises(AppendOnlyError):
        Event.objects.filter(tenant_id=tenant.id).delete()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_database_refuses_updates_and_deletes(fast_saga):
    tenant = f.active_tenant()
    for sql in (
        "UPDATE audit_event SET actor = 'x' WHERE tenant_id = %s",
        "DELETE FROM audit_event WHERE tenant_id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as c:
            c.execute(sql, [tenant.id])
    assert Event.objects.filter(tenant_id=tenant.id, actor="x").count() == 0


def test_verify_passes_on_an_intact_feed(fast_saga):
    f.active_tenant()
    f.failed_tenant()
    checked, problems = verify_chains()
    assert problems == []
    assert checked == Event.objects.count()


def test_unknown_event_types_are_refused(fast_saga):
    tenant = f.pending_tenant()
    with pytest.raises(ValueError, match="unknown audit event type"):
        record_event(type="tenant.whatever", tenant_id=tenant.id, actor="system")


def _tamper(sql: str, params: list) -> None:
    """What an attacker with database access would do (the trigger disabled first)."""
    with connection.cursor() as c:
        if connection.vendor == "postgresql":
            c.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        c.execute(sql, params)
        if connection.vendor == "postgresql":
            c.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")


def test_verify_finds_a_rewritten_event(fast_saga):
    tenant = f.active_tenant()
    victim = Event.objects.filter(tenant_id=tenant.id, type="tenant.created").get()
    _tamper("UPDATE audit_event SET actor = %s WHERE id = %s", ["user:mallory", victim.id])
    _, problems = verify_chains()
    assert [p.seq for p in problems] == [victim.seq]
    assert "altered" in problems[0].message


def test_verify_finds_a_missing_event(fast_saga):
    tenant = f.active_tenant()
    victim = Event.objects.filter(tenant_id=tenant.id).order_by("seq")[3]
    _tamper("DELETE FROM audit_event WHERE id = %s", [victim.id])
    _, problems = verify_chains()
    assert any("missing" in p.message for p in problems)
