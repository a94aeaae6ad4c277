"""Demo data for ``make run``: an operator login and a few tenants in varied states."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.test.utils import override_settings

from provisioning import compensation, saga
from provisioning.models import StepExecution, StepStatus
from tenants.actors import Actor
from tenants.models import Tenant
from tenants.operations import create_tenant, perform

DEMO = [
    # slug, name, plan, how far
    ("northwind", "Northwind Traders", "enterprise", "active"),
    ("globex", "Globex Corporation", "growth", "suspended"),
    ("initech", "Initech", "starter", "failed"),
    ("umbrella", "Umbrella Health", "growth", "pending"),
    ("hooli", "Hooli", "enterprise", "stalled"),
]


class Command(BaseCommand):
    help = "Create the demo login and demo tenants (development only; does nothing twice)."

    def handle(self, *args: Any, **options: Any) -> None:
        self._login()
        if Tenant.objects.exists():
            return
        actor = Actor.shell("demo-seed")
        # Drive the seeded sagas here, quickly, so the portal opens on varied states.
        with override_settings(CONTROLPLANE_STEP_DELAY=0, CONTROLPLANE_FAULT_INJECTION=True):
            for slug, name, plan, target in DEMO:
                faults = {
                    "failed": {"configure_dns": "fail"},
                    "stalled": {"create_database": "stall"},
                }.get(target)
                tenant = create_tenant(
                    slug=slug,
                    name=name,
                    plan=plan,
                    admin_email=f"admin@{slug}.example",
                    actor=actor,
                    start=target != "pending",
                    faults=faults,
                )
                if target in ("active", "suspended", "failed", "stalled"):
                    self._drive(tenant)
                if target == "failed":
                    compensation.compensate_run(tenant.workflow_id)
                if target == "suspended":
                    perform("suspend", tenant_id=tenant.id, actor=actor)
        self.stdout.write(f"Seeded {len(DEMO)} demo tenants.")

    def _drive(self, tenant: Tenant) -> None:
        for _ in range(30):
            step = StepExecution.objects.filter(
                run_id=tenant.workflow_id, status=StepStatus.DISPATCHED
            ).first()
            if step is None:
                return
            saga.execute_step(step.pk, step.token)

    def _login(self) -> None:
        if User.objects.filter(username="demo").exists():
            self.stdout.write(
                "Log in as 'demo' (its password was printed on the first run; "
                "`python manage.py changepassword demo` sets a new one)."
            )
            return
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user("demo", "demo@example.invalid", password, is_staff=True)
        admin = Group.objects.filter(name="admin").first()
        if admin:
            user.groups.add(admin)
        self.stdout.write(
            self.style.SUCCESS(f"Demo login (development only, shown once): demo / {password}")
        )
