"""The three attacks of issue 23 by whoever owns the database, and what ``audit verify`` says.

The attacker has the database (superuser: ``session_replication_role = replica`` turns every
trigger off) and this project's code, but not the audit key, which is never in the database.
"""

from __future__ import annotations

import json
import logging
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit import keys
from audit.checkpoints import CHECKPOINT, parse, take_checkpoint, verify_checkpoints
from audit.models import GLOBAL_CHAIN, Event, EventChain
from audit.services import _body_around_seq, record_event, verify_chains
from observability.logs import JsonFormatter
from webhooks import services as webhooks
from webhooks.models import Delivery

from ..admin.helpers import active_tenant

pytestmark = pytest.mark.django_db

AUDIT_KEY = "k" * 40


@pytest.fixture
def tenant(fast_saga: Any) -> Any:
    return active_tenant("victim")


@pytest.fixture
def checkpoint_file(tmp_path: Path, caplog: Any) -> Any:
    """Take a checkpoint and keep its log lines as the JSON log wrote them, in a file."""

    def take() -> Path:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="audit.checkpoint"):
            records = take_checkpoint()
        assert records
        path = tmp_path / "checkpoints.jsonl"
        lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "audit.checkpoint"]
        with path.open("a") as out:
            out.writelines(line + "\n" for line in lines)
        return path

    return take


def owner_sql(sql: str, params: list | None = None) -> None:
    """As the database owner, every trigger off for the transaction."""
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL session_replication_role = replica")
        c.execute(sql, params or [])


def verify(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("audit", "verify", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return out.getvalue(), err.getvalue() + str(exc)
    return out.getvalue(), err.getvalue()


def test_a_the_last_event_removed_and_the_head_set_back(tenant, checkpoint_file):
    path = checkpoint_file()
    last, before = Event.objects.filter(tenant_id=tenant.id).order_by("-seq")[:2]
    owner_sql("DELETE FROM audit_event WHERE id = %s", [last.id])
    owner_sql(
        "UPDATE audit_eventchain SET length = %s, head = %s WHERE tenant_id = %s",
        [before.seq, before.digest, tenant.id],
    )
    # The chain alone cannot tell: it is a shorter, intact chain.
    assert verify_chains(tenant_id=tenant.id)[1] == []
    # The checkpoint taken before can.
    _, err = verify("--checkpoint", str(path))
    assert (
        f"tenant {tenant.id} event #{last.seq}: missing; the checkpoint at" in err
        and f"the chain now ends at #{before.seq} (shortened)" in err
    )


def test_a_without_replica_role_the_head_cannot_move_back_nor_vanish(tenant):
    chain = EventChain.objects.get(tenant_id=tenant.id)
    for sql in (
        "UPDATE audit_eventchain SET length = length - 1 WHERE tenant_id = %s",
        "UPDATE audit_eventchain SET head = 'x' WHERE tenant_id = %s",
        "DELETE FROM audit_eventchain WHERE tenant_id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as c:
            c.execute(sql, [tenant.id])
    assert EventChain.objects.get(tenant_id=tenant.id).head == chain.head


def forge_from(tenant_id: Any, seq: int, **changes: Any) -> None:
    """Rewrite event ``seq`` and recompute every later digest and the head with the project's
    own chain rule, under the key the attacker can get: the unkeyed one, or a guess."""
    guess = keys._key("a guessed audit key " * 3, from_secret_key=False)
    events = list(Event.objects.filter(tenant_id=tenant_id, seq__gte=seq - 1).order_by("seq"))
    previous = events[0].digest if seq > 1 else ""
    for event in events[1:] if seq > 1 else events:
        for field, value in changes.items() if event.seq == seq else ():
            setattr(event, field, value)
        before, after = _body_around_seq(
            type=event.type,
            occurred_at=event.occurred_at,
            tenant_id=event.tenant_id,
            run_id=event.run_id,
            actor=event.actor,
            data=event.data,
        )
        digest = guess.chain_digest(previous + before + str(event.seq) + after)
        owner_sql(
            "UPDATE audit_event SET actor = %s, data = %s::jsonb, digest = %s WHERE id = %s",
            [event.actor, json.dumps(event.data), digest, event.id],
        )
        previous = digest
    owner_sql("UPDATE audit_eventchain SET head = %s WHERE tenant_id = %s", [previous, tenant_id])


def test_b_a_rewritten_event_with_every_later_digest_recomputed(tenant):
    created = Event.objects.get(tenant_id=tenant.id, type="tenant.created")
    forge_from(tenant.id, created.seq, actor="user:mallory", data={"reason": "forged"})
    assert Event.objects.get(pk=created.pk).actor == "user:mallory"
    _, err = verify()
    assert f"tenant {tenant.id} event #{created.seq}: event #{created.seq} (tenant.created) " in err
    assert "was altered" in err


def test_b_rewritten_as_an_unkeyed_event_is_refused_too(tenant):
    # The pre-key rule (plain SHA-256) for the rewritten event and all after it.
    victim = Event.objects.filter(tenant_id=tenant.id).order_by("seq")[2]
    events = list(Event.objects.filter(tenant_id=tenant.id, seq__gte=victim.seq).order_by("seq"))
    previous = Event.objects.get(tenant_id=tenant.id, seq=victim.seq - 1).digest
    for event in events:
        before, after = _body_around_seq(
            type=event.type,
            occurred_at=event.occurred_at,
            tenant_id=event.tenant_id,
            run_id=event.run_id,
            actor="user:mallory",
            data=event.data,
        )
        digest = keys.unkeyed_digest(previous + before + str(event.seq) + after)
        owner_sql(
            "UPDATE audit_event SET actor = 'user:mallory', digest = %s, key_id = '' WHERE id = %s",
            [digest, event.id],
        )
        previous = digest
    owner_sql("UPDATE audit_eventchain SET head = %s WHERE tenant_id = %s", [previous, tenant.id])
    _, problems = verify_chains(tenant_id=tenant.id)
    assert problems and all("no key id after keyed events" in p.message for p in problems)


def test_c_truncate_is_refused(tenant):
    # The test database lets the runner TRUNCATE (tests/conftest.py); as in production, off:
    for table in ("audit_event", "audit_eventchain"):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as c,
        ):
            c.execute("SET LOCAL controlplane.allow_audit_truncate = off")
            c.execute(f"TRUNCATE {table}")
    assert Event.objects.filter(tenant_id=tenant.id).exists()


def test_c_truncate_with_the_triggers_off_is_found_by_a_checkpoint(tenant, checkpoint_file):
    path = checkpoint_file()
    # session_replication_role = replica skips TRUNCATE triggers as well (what PostgreSQL
    # does; this test shows it): the owner can empty the tables.
    with transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL session_replication_role = replica")
        c.execute("SET LOCAL controlplane.allow_audit_truncate = off")
        c.execute("TRUNCATE audit_event, audit_eventchain")
    assert not Event.objects.exists()
    _, err = verify()
    # Nothing left to recompute, but the tenants are there without their chains...
    assert f"tenant {tenant.id} event #1: the tenant has no audit chain" in err
    _, err = verify("--checkpoint", str(path))  # ...and the checkpoint saw the events
    assert "events removed" in err and "chains removed" in err
    assert f"tenant {tenant.id} event #" in err and "(shortened)" in err


def test_a_changed_or_forged_checkpoint_is_refused(tenant, checkpoint_file):
    path = checkpoint_file()
    [record] = parse(path.read_text().splitlines())
    record["heads"][str(tenant.id)][0] -= 1  # "it was always one shorter"
    assert verify_checkpoints([record]) == [
        f"checkpoint at {record['at']}: its signature does not hold (changed?)"
    ]
    record["key_id"] = "nosuchkey"
    assert "unknown audit key 'nosuchkey'" in verify_checkpoints([record])[0]


def test_checkpoints_are_written_by_the_watchdog_pass_and_sent_to_webhooks(
    tenant, caplog, settings
):
    from provisioning.tasks import run_watchdog

    settings.CONTROLPLANE_WEBHOOK_ALLOW_PRIVATE = True
    webhooks.add_subscription(url="http://127.0.0.1:9/hook", events="audit.checkpoint")
    with caplog.at_level(logging.INFO, logger="audit.checkpoint"):
        run_watchdog()
    [event] = Event.objects.filter(type=CHECKPOINT)
    assert event.tenant_id is None and event.actor == "system"
    head = EventChain.objects.get(tenant_id=tenant.id)
    assert event.data["heads"][str(tenant.id)] == [head.length, head.head]
    assert Delivery.objects.filter(event_id=event.id).count() == 1
    [line] = [r.getMessage() for r in caplog.records if r.name == "audit.checkpoint"]
    assert parse([line]) == [event.data]
    # A pass that finds nothing new writes nothing; a new event, a checkpoint of its chain only.
    run_watchdog()
    assert Event.objects.filter(type=CHECKPOINT).count() == 1
    record_event(type="auth.login_failed", tenant_id=None, actor="user:x", data={})
    run_watchdog()
    latest = Event.objects.filter(type=CHECKPOINT).order_by("-id").first()
    assert list(latest.data["heads"]) == [str(GLOBAL_CHAIN)]
    assert verify_checkpoints([event.data, latest.data]) == []


def test_the_key_rotates_by_key_id(fast_saga, settings):
    settings.CONTROLPLANE_AUDIT_KEY = AUDIT_KEY
    old = active_tenant("before-rotation")
    first_id = Event.objects.filter(tenant_id=old.id).first().key_id
    assert first_id == keys.current_key().key_id and AUDIT_KEY not in first_id
    settings.CONTROLPLANE_AUDIT_KEY = "n" * 40
    record_event(type="tenant.suspended", tenant_id=old.id, actor="user:a", data={})
    ids = set(Event.objects.filter(tenant_id=old.id).values_list("key_id", flat=True))
    assert ids == {first_id, keys.current_key().key_id}
    # The old key gone: its events cannot be checked, and verify says which key is missing.
    _, err = verify()
    assert f"unknown audit key {first_id!r} (add it to CONTROLPLANE_AUDIT_RETIRED_KEYS)" in err
    settings.CONTROLPLANE_AUDIT_RETIRED_KEYS = [AUDIT_KEY]
    out, err = verify()
    assert err == "" and "Audit chains intact" in out


def test_the_key_is_never_in_the_database(fast_saga, settings):
    settings.CONTROLPLANE_AUDIT_KEY = AUDIT_KEY
    tenant = active_tenant("secretive")
    key = keys.current_key()
    with connection.cursor() as c:
        c.execute(
            "SELECT string_agg(e::text, '') FROM audit_event e WHERE tenant_id = %s", [tenant.id]
        )
        dump = c.fetchone()[0]
    assert AUDIT_KEY not in dump and key.chain_key.hex() not in dump
    assert key.pads[0].hex() not in dump
