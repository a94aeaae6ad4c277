"""Tenants in a known state, built through the services and the inline saga driver."""

from __future__ import annotations

from typing import Any

from django.test import Client

from provisioning import compensation
from tenants.models import Tenant
from tenants.services import Actor, create_tenant, decommission_tenant

from ..conftest import drive, drive_compensation

SETUP = Actor.shell("setup")


def new_tenant(slug: str, *, start: bool = True, faults: Any = None) -> Tenant:
    return create_tenant(
        slug=slug,
        name=slug.title(),
        plan="starter",
        admin_email=f"ops@{slug}.test",
        actor=SETUP,
        start=start,
        faults=faults,
    )


def active_tenant(slug: str) -> Tenant:
    tenant = new_tenant(slug)
    drive(tenant.workflow_id)
    tenant.refresh_from_db()
    assert tenant.state == "active", tenant.last_error
    return tenant


def failed_tenant(slug: str, step: str = "create_database") -> Tenant:
    tenant = new_tenant(slug, faults={step: "fail"})
    drive(tenant.workflow_id)
    drive_compensation(tenant.workflow_id)
    tenant.refresh_from_db()
    assert tenant.state == "failed", tenant.state
    return tenant


def decommissioned_tenant(slug: str) -> Tenant:
    tenant = active_tenant(slug)
    decommission_tenant(tenant_id=tenant.id, actor=SETUP)
    compensation.decommission_tenant(tenant.id)
    tenant.refresh_from_db()
    assert tenant.state == "decommissioned"
    return tenant


def logged_in(client: Client, user: Any) -> Client:
    """Log in through the real authentication backend, with the persona's password."""
    assert client.login(username=user.username, password="pw-" + user.username)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []
