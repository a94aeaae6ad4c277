from __future__ import annotations

import pytest

from tenants.models import Tenant
from tenants.services import Actor, create_tenant

from ..conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker]


def test_a_tenant_reaches_active_with_a_real_worker(celery_worker):
    tenant = create_tenant(
        slug="acme",
        name="Acme",
        plan="starter",
        admin_email="ops@acme.test",
        actor=Actor.shell("tester"),
    )
    wait_for(lambda: Tenant.objects.get(pk=tenant.pk).state == "active", what="active")
