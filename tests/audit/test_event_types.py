"""Every audit event type the contract names is a member of ``EventType``, and the vocabularies
are enums: a typo is an ``AttributeError``, never a silent new word."""

from __future__ import annotations

import pytest

from audit.events import EVENT_TYPES, GLOBAL_EVENT_TYPES, EventType

# Copied from the contract: "Audit events", then the later parts (reconciliation, security,
# four eyes, audit checkpoints).
CONTRACT_EVENT_TYPES = [
    "tenant.created",
    "tenant.provisioning.started",
    "tenant.provisioning.retry_requested",
    "tenant.provisioning.step_started",
    "tenant.provisioning.step_completed",
    "tenant.provisioning.step_failed",
    "tenant.resource.allocated",
    "tenant.resource.reused",
    "tenant.resource.released",
    "tenant.provisioning.compensation_started",
    "tenant.provisioning.compensation_completed",
    "tenant.provisioning.compensation_failed",
    "tenant.provisioning.completed",
    "tenant.provisioning.failed",
    "tenant.provisioning.cancel_requested",
    "tenant.provisioning.cancelled",
    "tenant.provisioning.reset_started",
    "tenant.provisioning.reset_completed",
    "tenant.provisioning.reset_failed",
    "tenant.provisioning.step_redispatched",
    "tenant.provisioning.stalled",
    "tenant.provisioning.orphaned_handle",
    "tenant.suspended",
    "tenant.resumed",
    "tenant.decommission_requested",
    "tenant.decommissioned",
    # Second part.
    "tenant.resource.leaked",
    "tenant.resource.missing",
    "auth.login_failed",
    "auth.locked_out",
    # Third part.
    "audit.checkpoint",
]


@pytest.mark.parametrize("name", CONTRACT_EVENT_TYPES)
def test_every_contract_event_type_is_a_member(name: str) -> None:
    assert EventType(name) in EVENT_TYPES


def test_members_are_plain_strings_in_json_and_the_database() -> None:
    import json

    assert json.dumps({"type": EventType.TENANT_SUSPENDED}) == '{"type": "tenant.suspended"}'
    assert str(EventType.TENANT_SUSPENDED) == "tenant.suspended"
    assert GLOBAL_EVENT_TYPES <= EVENT_TYPES


def test_a_typo_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        EventType.TENANT_SUSPENDDED  # noqa: B018


def test_record_event_refuses_an_unknown_type() -> None:
    from audit.services import record_event

    with pytest.raises(ValueError, match="unknown audit event type"):
        record_event(type="tenant.suspendded", tenant_id=None, actor="system")


def test_the_other_vocabularies_are_enums() -> None:
    from controlplane.task_names import TaskName
    from tenants.errors import ErrorCode, OperationError
    from tenants.permission_names import PermissionName
    from tenants.vocabulary import Recommended, StepDisplay

    assert PermissionName.VIEW_TENANT == "tenants.view_tenant"
    assert PermissionName.DECOMMISSION_TENANT.codename == "decommission_tenant"
    assert ErrorCode.INVALID_STATE == "invalid_state"
    assert Recommended.RESET.label == "Reset, then retry"
    assert StepDisplay.COMPENSATED == "compensated"
    assert TaskName.WATCHDOG == "provisioning.watchdog"
    assert OperationError(ErrorCode.NOT_FOUND, "x").status == 404
    with pytest.raises(ValueError):
        OperationError("not_a_code", "x")  # type: ignore[arg-type]


def test_every_operation_names_known_event_types_and_permissions() -> None:
    from tenants.operations import OPERATIONS
    from tenants.permission_names import PermissionName

    for op in OPERATIONS.values():
        assert isinstance(op.permission, PermissionName)
        for event in op.events:
            assert isinstance(event, EventType), (op.name, event)
