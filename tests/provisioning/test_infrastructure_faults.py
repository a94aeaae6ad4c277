"""Defects found by the chaos run: a worker whose database connection died, and an allocation
made just before its worker was killed. Both with a real worker process."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection

from audit.models import Event
from controlplane.celery import app
from provisioning.models import Allocation, AllocationIntent, StepExecution
from tenants.models import Tenant
from tenants.services import cancel_provisioning

from .. import factories as f
from ..conftest import close_other_sessions, wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker]


def succeeded(log: Path, task: str) -> int:
    return len(re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded", log.read_text()))


def test_a_worker_heals_after_its_database_connection_is_terminated(worker_process):
    worker_process.start(concurrency=1)
    log = worker_process.log_path
    app.send_task("provisioning.watchdog")
    wait_for(lambda: succeeded(log, "provisioning.watchdog") == 1, what="a first watchdog pass")

    # What a database restart or failover does to every connection the worker keeps.
    close_other_sessions()

    for _ in range(5):
        app.send_task("provisioning.watchdog")
    wait_for(
        lambda: succeeded(log, "provisioning.watchdog") == 6,
        what="five more watchdog passes to succeed after the connections were terminated",
    )
    tenant = f.new_tenant(slug="after-the-failover")
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).state == "active",
        what="the saga to complete on the healed worker",
    )
    tries = StepExecution.objects.filter(run_id=tenant.workflow_id).values_list("tries", flat=True)
    assert set(tries) == {1}  # no try was burnt on a dead connection
    assert "raised unexpected" not in log.read_text()


def test_a_worker_killed_between_the_provider_call_and_the_ledger_leaves_nothing_behind(
    worker_process, settings
):
    worker_process.start(concurrency=1)
    tenant = f.new_tenant(slug="killed-before-ledger", faults={"allocate_storage": "slow:2"})
    wait_for(
        lambda: StepExecution.objects.filter(
            run_id=tenant.workflow_id, name="allocate_storage", status="running"
        ).exists(),
        what="allocate_storage to start",
    )
    directory = Path(settings.CONTROLPLANE_DATA_ROOT) / "tenants" / str(tenant.id)

    # Hold the tenant's row from another session: the worker's record phase waits for it, so
    # the directory exists while the ledger has not been told.
    with _tenant_row_held(settings.DATABASES["default"], tenant.id, directory):
        children = worker_process.children()
        assert len(children) == 1
        os.kill(children[0], signal.SIGKILL)

    cancel_provisioning(tenant_id=tenant.id, actor=f.ACTOR)
    wait_for(
        lambda: Tenant.objects.get(pk=tenant.pk).state == "pending",
        what="the cancel to finish",
    )
    assert not directory.exists()
    assert not Allocation.objects.filter(tenant=tenant, released_at__isnull=True).exists()
    assert not AllocationIntent.objects.filter(tenant=tenant, resolved_at__isnull=True).exists()
    released = Event.objects.filter(tenant_id=tenant.id, type="tenant.resource.released")
    assert released.filter(data__external_id=str(directory.resolve())).count() == 1


@contextmanager
def _tenant_row_held(db: dict[str, Any], tenant_id: Any, directory: Path) -> Iterator[None]:
    """Lock the tenant's row from a session of its own and return once the worker's provider
    call is done (the record phase that follows needs the row, so it waits)."""
    host = db["HOST"] or db.get("OPTIONS", {}).get("host") or "127.0.0.1"
    with psycopg.connect(
        host=host,
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        dbname=db["NAME"],
        autocommit=False,
    ) as locker:
        locker.execute("SELECT 1 FROM tenants_tenant WHERE id = %s FOR UPDATE", [tenant_id])
        wait_for(directory.is_dir, what="the storage provider to make the directory")
        wait_for(
            lambda: _waits_for_lock(locker.info.backend_pid),
            what="the worker's record phase to wait for the tenant's row",
        )
        yield
        locker.rollback()


def _waits_for_lock(blocker_pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
            [blocker_pid],
        )
        return cursor.fetchone()[0] > 0


class IdentityLosingItsConnectionOnce:
    """The identity provider whose first release dies with the database connection."""

    calls = 0

    def __getattr__(self, name: str):
        from provisioning.providers.identity import DjangoGroupIdentity

        return getattr(DjangoGroupIdentity(), name)

    def release(self, tenant_id, external_id):
        from django.db import OperationalError

        from provisioning.providers.identity import DjangoGroupIdentity

        type(self).calls += 1
        if type(self).calls == 1:
            raise OperationalError("terminating connection due to administrator command")
        DjangoGroupIdentity().release(tenant_id, external_id)


@pytest.mark.django_db(transaction=True)
def test_a_release_whose_database_connection_dies_is_tried_again(fast_saga):
    from provisioning import ledger
    from provisioning.models import Allocation
    from provisioning.providers import _provider

    from ..factories import active_tenant

    tenant = active_tenant()
    fast_saga.CONTROLPLANE_PROVIDERS = {
        **fast_saga.CONTROLPLANE_PROVIDERS,
        "identity": f"{__name__}.IdentityLosingItsConnectionOnce",
    }
    _provider.cache_clear()
    try:
        identity = Allocation.objects.get(tenant=tenant, kind="identity")
        assert ledger.release_allocation(identity.pk, run_id=None, actor="system")
        identity.refresh_from_db()
        assert identity.released_at is not None and identity.release_error == ""
        assert IdentityLosingItsConnectionOnce.calls == 2
    finally:
        _provider.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_a_task_checks_its_connection_with_a_query_only_when_the_server_ended_it():
    """Between tasks a worker asks its connection whether it still works; a session the server
    ended (a restart, a failover, ``pg_terminate_backend``) says so on its socket, so only then
    does the next task pay Django's ``SELECT 1``, and it runs on a fresh session."""
    from controlplane.celery import heal_database_connections

    backend_pid = _backend_pid
    connection.close()  # a session of its own, whatever earlier tests left on theirs
    first = backend_pid()
    heal_database_connections()
    assert connection.health_check_done  # nothing on the socket: no SELECT 1 before the task
    assert backend_pid() == first

    close_other_sessions_of(first)
    heal_database_connections()
    assert not connection.health_check_done  # the next use checks, and reconnects
    assert backend_pid() != first


@pytest.mark.django_db(transaction=True)
def test_a_web_request_checks_its_connection_with_a_query_only_when_the_server_ended_it():
    """The same for a web process: each request starts with Django's close_old_connections,
    then controlplane.dbhealth marks a connection with a quiet socket checked."""
    from django.core.signals import request_started

    from controlplane import dbhealth

    # As in a web process: after Django's receiver (the test client disconnects and connects
    # that one again around its requests, which puts it last).
    dbhealth.connect()
    connection.close()  # a session of its own, whatever earlier tests left on theirs
    first = _backend_pid()
    request_started.send(sender=None)
    assert connection.health_check_done
    assert _backend_pid() == first

    close_other_sessions_of(first)
    request_started.send(sender=None)
    assert not connection.health_check_done
    assert _backend_pid() != first  # checked, found dead, and the request's statement reconnected


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def close_other_sessions_of(pid: int) -> None:
    """End a session from another one, as a database restart would, and wait until it is gone
    (``pg_terminate_backend`` only signals it)."""
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

        def gone() -> bool:
            with other.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
                return cursor.fetchone() is None

        wait_for(gone, what=f"session {pid} to end")
    finally:
        other.close()
