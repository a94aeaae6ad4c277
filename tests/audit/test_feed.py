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
        c.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        c.execute(sql, params)
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


def test_an_append_is_two_statements_and_the_digest_is_the_chain_rule(fast_saga):
    from django.test.utils import CaptureQueriesContext

    from audit import keys
    from audit.models import EventChain
    from audit.services import _digest

    tenant = f.pending_tenant()
    head = EventChain.objects.get(tenant_id=tenant.id)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        event = record_event(
            type="tenant.provisioning.step_started",
            tenant_id=tenant.id,
            actor="user:zoë",  # not ASCII: hashed the same in Python and in PostgreSQL
            data={"step": "validate_request", "seq": 987654321987654321, "note": '"seq": 1'},
        )
    assert len(queries) <= 2, [q["sql"] for q in queries]
    assert not any("SAVEPOINT" in q["sql"] for q in queries)
    event = Event.objects.get(pk=event.pk)
    assert event.seq == head.length + 1
    assert event.key_id == keys.current_key().key_id
    assert event.digest == _digest(
        head.head,
        key_id=event.key_id,
        type=event.type,
        occurred_at=event.occurred_at,
        tenant_id=event.tenant_id,
        run_id=event.run_id,
        actor=event.actor,
        data=event.data,
        seq=event.seq,
    )
    assert EventChain.objects.get(tenant_id=tenant.id).head == event.digest
    assert verify_chains(tenant_id=tenant.id) == (event.seq, [])


def test_the_first_event_of_a_tenant_starts_its_chain(fast_saga):
    import uuid

    from audit.models import EventChain

    tenant_id = uuid.uuid4()
    first = record_event(type="tenant.created", tenant_id=tenant_id, actor="system")
    second = record_event(type="tenant.suspended", tenant_id=tenant_id, actor="system")
    assert (first.seq, second.seq) == (1, 2)
    assert EventChain.objects.get(tenant_id=tenant_id).head == second.digest
    assert verify_chains(tenant_id=tenant_id) == (2, [])


def test_a_batch_of_events_is_one_statement_and_chains_as_if_recorded_one_by_one(
    fast_saga, django_assert_num_queries
):
    from audit.services import batched

    tenant = f.active_tenant()
    before = Event.objects.filter(tenant_id=tenant.id).count()
    with transaction.atomic(), django_assert_num_queries(1), batched():
        made = [
            record_event(
                type="tenant.resource.reused",
                tenant_id=tenant.id,
                actor="batch",
                data={"kind": "storage", "n": n},
            )
            for n in range(3)
        ]
    assert [e.seq for e in made] == [before + 1, before + 2, before + 3]
    stored = list(Event.objects.filter(tenant_id=tenant.id, actor="batch").order_by("seq"))
    assert [(e.id, e.seq, e.digest, e.data["n"]) for e in stored] == [
        (e.id, e.seq, e.digest, e.data["n"]) for e in made
    ]
    assert [e.id for e in stored] == sorted(e.id for e in stored)
    checked, problems = verify_chains(tenant_id=tenant.id)
    assert problems == [] and checked == before + 3


def test_a_batch_that_fails_writes_nothing_and_a_new_chain_starts_in_a_batch(fast_saga):
    import uuid

    from audit.services import batched

    tenant = f.active_tenant()
    before = Event.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic(), batched():
        record_event(type="tenant.resumed", tenant_id=tenant.id, actor="batch")
        raise RuntimeError("the change failed")
    assert Event.objects.count() == before
    fresh = uuid.uuid4()  # no event yet: its chain does not exist
    with transaction.atomic(), batched():
        for _ in range(2):
            record_event(type="tenant.resource.leaked", tenant_id=fresh, actor="batch")
    assert list(Event.objects.filter(tenant_id=fresh).order_by("seq").values_list("seq")) == [
        (1,),
        (2,),
    ]
    assert verify_chains(tenant_id=fresh)[1] == []


def test_a_statement_carries_the_batch_and_an_event_with_a_condition_is_written_if_it_holds(
    fast_saga, django_assert_num_queries
):
    """``carry``: another statement writes the batch's events (the saga's start and record do),
    and ``when`` decides in that statement which are written; the chain is as if the written
    ones had been recorded one by one."""

    from audit.services import batched, carry

    tenant = f.active_tenant()
    before = Event.objects.filter(tenant_id=tenant.id).count()
    with transaction.atomic(), batched():
        made = [
            record_event(
                type="tenant.resource.reused",
                tenant_id=tenant.id,
                actor="carry",
                data={"n": n},
                when=when,
            )
            for n, when in (
                (1, None),
                (2, "NOT EXISTS (SELECT 1 FROM answer)"),
                (3, "EXISTS (SELECT 1 FROM answer WHERE x = %(x)s)"),
            )
        ]
        carried = carry(tenant.id)
        assert carried is not None and carry(tenant.id) is None
        with django_assert_num_queries(1), connection.cursor() as cursor:
            cursor.execute(
                f"WITH answer (x) AS (SELECT 7), {carried.ctes} SELECT x, {carried.result} "  # noqa: S608
                "FROM answer",
                {**carried.params, "x": 7},
            )
            row = cursor.fetchone()
        assert row[0] == 7
        carried.written(row[-1])
    first, skipped, kept = made
    assert (first.seq, kept.seq) == (before + 1, before + 2)
    assert skipped.id is None and skipped.seq is None
    stored = list(Event.objects.filter(tenant_id=tenant.id, actor="carry").order_by("seq"))
    assert [(e.id, e.seq, e.digest, e.data["n"]) for e in stored] == [
        (e.id, e.seq, e.digest, e.data["n"]) for e in (first, kept)
    ]
    checked, problems = verify_chains(tenant_id=tenant.id)
    assert problems == [] and checked == before + 2


def test_an_event_with_a_condition_needs_a_batch_and_a_statement_to_carry_it(fast_saga):
    tenant = f.active_tenant()
    before = Event.objects.count()
    with pytest.raises(ValueError, match="batched"):
        record_event(type="tenant.resumed", tenant_id=tenant.id, actor="x", when="true")
    from audit.services import batched

    with pytest.raises(ValueError, match="carry"), transaction.atomic(), batched():
        record_event(type="tenant.resumed", tenant_id=tenant.id, actor="x", when="true")
    assert Event.objects.count() == before
