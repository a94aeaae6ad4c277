"""Tenants in every state, built through the services and the inline saga driver."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from provisioning import compensation
from provisioning.models import Run
from provisioning.watchdog import run_watchdog
from tenants.models import Tenant
from tenants.services import (
    Actor,
    cancel_provisioning,
    create_tenant,
    decommission_tenant,
    suspend_tenant,
)
from tests.factories import paused_tenant, updating_tenant

from ..conftest import drive, drive_compensation

SHELL = Actor.shell("tester")


def fresh(tenant: Tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.pk)


def new_tenant(slug: str, *, start: bool = True, faults: Any = None, **fields: Any) -> Tenant:
    values = {"name": slug.title(), "plan": "starter", "admin_email": f"ops@{slug}.test"}
    values.update(fields)
    return create_tenant(slug=slug, actor=SHELL, start=start, faults=faults, **values)


def run_to_end(tenant: Tenant) -> Tenant:
    tenant = fresh(tenant)
    if Run.objects.filter(pk=tenant.workflow_id, status="running").exists():
        drive(tenant.workflow_id)
    tenant = fresh(tenant)
    run = Run.objects.filter(tenant=tenant).order_by("-attempt").first()
    if run is not None and (run.status == "cancelling" or run.compensating):
        drive_compensation(run.id)
    return fresh(tenant)


def stall(tenant: Tenant) -> Tenant:
    """Play a stalled saga forward: the watchdog redispatches until it gives up and flags it."""
    from django.conf import settings

    later = timezone.now()
    for _ in range(settings.CONTROLPLANE_STEP_MAX_TRIES + 2):
        drive(fresh(tenant).workflow_id)
        later += timedelta(seconds=settings.CONTROLPLANE_HEARTBEAT_TIMEOUT + 1)
        run_watchdog(now=later)
        if fresh(tenant).last_error:
            break
    tenant = fresh(tenant)
    assert tenant.state == "provisioning" and tenant.last_error, "the saga did not stall"
    return tenant


STATES = (
    "pending",
    "pending_error",
    "provisioning",
    "stalled",
    "active",
    "failed",
    "suspended",
    "cancelled",
    "decommissioning",
    "decommissioned",
)


@pytest.fixture
def make_state(fast_saga: Any, db: None) -> Callable[[str], Tenant]:
    """``make_state("failed")`` -> a tenant in that situation, reached the way production does."""
    counter = iter(range(1000))

    def make(kind: str, **fields: Any) -> Tenant:
        slug = fields.pop("slug", None) or f"{kind.replace('_', '-')}-{next(counter)}"
        if kind == "pending":
            return new_tenant(slug, start=False, **fields)
        if kind == "provisioning":
            return new_tenant(slug, **fields)
        if kind == "paused":
            return paused_tenant(slug=slug, **fields)
        if kind == "updating":
            return updating_tenant(slug=slug, **fields)
        if kind == "stalled":
            return stall(new_tenant(slug, faults={"allocate_storage": "stall"}, **fields))
        if kind == "failed":
            tenant = run_to_end(new_tenant(slug, faults={"allocate_identity": "fail"}, **fields))
            assert tenant.state == "failed"
            return tenant
        if kind == "pending_error":
            # A cancel whose rollback could not release the storage: pending, with the error.
            providers = dict(fast_saga.CONTROLPLANE_PROVIDERS)
            fast_saga.CONTROLPLANE_PROVIDERS = {
                **providers,
                "storage": "tests.console.providers.StuckStorage",
            }
            try:
                tenant = new_tenant(slug, **fields)
                drive(tenant.workflow_id, max_steps=3)
                cancel_provisioning(tenant_id=tenant.pk, actor=SHELL)
                tenant = run_to_end(tenant)
            finally:
                fast_saga.CONTROLPLANE_PROVIDERS = providers
            assert tenant.state == "pending" and tenant.last_error
            return tenant
        if kind == "cancelled":
            tenant = new_tenant(slug, **fields)
            drive(tenant.workflow_id, max_steps=3)
            cancel_provisioning(tenant_id=tenant.pk, actor=SHELL)
            tenant = run_to_end(tenant)
            assert tenant.state == "pending"
            return tenant
        tenant = run_to_end(new_tenant(slug, **fields))
        assert tenant.state == "active", tenant.last_error
        if kind == "active":
            return tenant
        if kind == "suspended":
            suspend_tenant(tenant_id=tenant.pk, actor=SHELL)
            return fresh(tenant)
        if kind in ("decommissioning", "decommissioned"):
            decommission_tenant(tenant_id=tenant.pk, actor=SHELL)
            if kind == "decommissioned":
                compensation.decommission_tenant(tenant.pk)
            return fresh(tenant)
        raise ValueError(kind)

    return make


def login(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client
