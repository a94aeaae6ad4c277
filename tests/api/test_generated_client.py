"""A client generated from the served OpenAPI document works, as a platform team would use it.

``openapi-python-client`` (the most used Python generator) builds a client package from
``/api/v1/openapi.json`` of a live server into tmp_path, offline; the test imports it and drives
create → cancel → retry → get through it, with a real worker provisioning, plus the 409 shape.
Operation calls without a body are the point: the document used to declare the optional body
as ``anyOf: [ActionIn, null]`` and the generated client crashed on them.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

from api.tokens import issue_token

from ..conftest import wait_for

pytestmark = [pytest.mark.services, pytest.mark.worker]

PACKAGE = "controlplane_generated_client"


@pytest.fixture
def generated(live_server: Any, tmp_path: Path) -> Iterator[ModuleType]:
    """The generated package, importable for the test only."""
    document = tmp_path / "openapi.json"
    response = requests.get(f"{live_server.url}/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    document.write_bytes(response.content)
    # No post hooks: they only reformat the generated code (with ruff, from PATH).
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_create_cancel_retry_get_through_a_generated_client(
    generated, live_server, celery_worker, admin_user
):
    _, raw = issue_token(user=admin_user, name="generated-client")
    client = generated.AuthenticatedClient(
        base_url=live_server.url, token=raw, raise_on_unexpected_status=True, timeout=30
    )
    models = module("models")
    create_tenant = module("api.tenants.create_tenant")
    get_tenant = module("api.tenants.get_tenant")
    list_tenants = module("api.tenants.list_tenants")
    cancel = module("api.operations.cancel_provisioning")
    retry = module("api.operations.retry_provisioning")
    suspend = module("api.operations.suspend_tenant")

    def state(tenant_id: str) -> str:
        detail = get_tenant.sync(client=client, tenant_id=tenant_id)
        assert isinstance(detail, models.TenantDetailOut), detail
        return detail.state.value  # type: ignore[no-any-return]

    # Create: the saga stalls at configure_dns (fault injection), so cancel meets a live run.
    body = models.TenantCreateIn(
        slug="gen-client",
        name="Generated Client",
        plan=models.TenantCreateInPlan.STARTER,
        admin_email="ops@gen.test",
        faults=models.TenantCreateInFaultsType0.from_dict({"configure_dns": "stall"}),
    )
    created = create_tenant.sync_detailed(client=client, body=body)
    assert created.status_code == 201, created.content
    tenant = created.parsed
    assert isinstance(tenant, models.TenantOut)
    assert tenant.state.value == "provisioning"
    tenant_id = str(tenant.id)

    def at_configure_dns() -> bool:
        detail = get_tenant.sync(client=client, tenant_id=tenant_id)
        return detail.run is not None and detail.run.current_step == "configure_dns"

    wait_for(at_configure_dns, timeout=60, what="the run to reach configure_dns")

    # Cancel, without a body (the call that used to crash inside the client).
    cancelled = cancel.sync_detailed(client=client, tenant_id=tenant_id)
    assert cancelled.status_code == 202, cancelled.content
    assert isinstance(cancelled.parsed, models.TenantOut)
    wait_for(lambda: state(tenant_id) == "pending", timeout=60, what="the rollback to finish")

    # Retry, without a body: a new run that completes.
    retried = retry.sync_detailed(client=client, tenant_id=tenant_id)
    assert retried.status_code == 202, retried.content
    assert retried.parsed.state.value == "provisioning"
    wait_for(lambda: state(tenant_id) == "active", timeout=60, what="the retry to provision")

    detail = get_tenant.sync(client=client, tenant_id=tenant_id)
    assert detail.run.attempt == 2
    assert {a.kind for a in detail.allocations} >= {"storage", "identity", "database"}
    assert "suspend" in detail.available_actions

    page = list_tenants.sync(client=client, slug="gen-client")
    assert [str(t.id) for t in page.items] == [tenant_id]

    # A refusal comes back as the documented error shape, parsed.
    refused = cancel.sync_detailed(client=client, tenant_id=tenant_id)
    assert refused.status_code == 409
    assert isinstance(refused.parsed, models.ErrorOut)
    assert refused.parsed.error.code == "invalid_state"
    assert refused.parsed.error.message

    # An empty body object goes through as well.
    suspended = suspend.sync_detailed(client=client, tenant_id=tenant_id, body=models.ActionIn())
    assert suspended.status_code == 202, suspended.content
    assert suspended.parsed.state.value == "suspended"
