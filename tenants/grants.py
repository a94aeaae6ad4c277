"""Which permission each operation of the table needs, and the least role that grants it.

One row per operation (``tenants.operations`` reads its ``permission`` from here): the roles
(``tenants.roles``) and ``Tenant.Meta.permissions`` are built from these rows, so a new
operation is granted by adding one line. This module imports nothing of ours, so the model's
``Meta`` can read it (the table itself sits above the services, which sit above the model).
"""

from __future__ import annotations

from dataclasses import dataclass

from .permission_names import PermissionName

ROLE_NAMES = ("viewer", "operator", "admin")  # each role has everything the one before has


@dataclass(frozen=True)
class Grant:
    codename: str
    # The permission's name in Django; "" for a permission Django makes itself (``add_tenant``).
    description: str
    role: str  # the least role that has it: ``operator`` or ``admin``
    app_label: str = "tenants"

    @property
    def permission(self) -> PermissionName:
        """The permission's name; one missing from ``PermissionName`` fails at import."""
        return PermissionName(f"{self.app_label}.{self.codename}")

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role that has it, least first."""
        return ROLE_NAMES[ROLE_NAMES.index(self.role) :]

    @property
    def roles_text(self) -> str:
        """``the operator or admin role``, ``the admin role``."""
        return f"the {' or '.join(self.roles)} role"


GRANTS: dict[str, Grant] = {
    "create": Grant("add_tenant", "", "operator"),
    "cancel": Grant("cancel_provisioning", "Can cancel an in-flight provisioning", "operator"),
    "reset": Grant("reset_provisioning", "Can reset a stuck provisioning", "operator"),
    "retry": Grant("retry_provisioning", "Can retry provisioning", "operator"),
    "suspend": Grant("suspend_tenant", "Can suspend a tenant", "operator"),
    "resume": Grant("resume_tenant", "Can resume a tenant", "operator"),
    "decommission": Grant("decommission_tenant", "Can decommission a tenant", "admin"),
    "change_plan": Grant("change_plan_tenant", "Can change a tenant's plan", "operator"),
    "pause": Grant("pause_run", "Can pause a tenant's live run", "operator"),
    "unpause": Grant("unpause_run", "Can unpause a tenant's paused run", "operator"),
}


def model_permissions() -> list[tuple[str, str]]:
    """``Tenant.Meta.permissions``: the table's permissions Django does not make itself."""
    return [(g.codename, g.description) for g in GRANTS.values() if g.description]


def granted_to(role: str) -> list[tuple[str, str]]:
    """The operations' permissions a role has, as ``(app_label, codename)``."""
    return [(g.app_label, g.codename) for g in GRANTS.values() if role in g.roles]
