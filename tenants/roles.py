"""The three roles and their permissions, created by a migration and kept by ``sync_roles``."""

from __future__ import annotations

from typing import Any

from .grants import ROLE_NAMES, granted_to

VIEW = [
    ("tenants", "view_tenant"),
    ("tenants", "view_schedule"),
    ("audit", "view_event"),
    ("provisioning", "view_run"),
    ("provisioning", "view_stepexecution"),
    ("provisioning", "view_allocation"),
    ("provisioning", "view_resourcefinding"),
    ("tenants", "view_approvalrequest"),
    ("provisioning", "view_allocationchange"),
]
# Every role sees everything; what each may do is read from the table's rows (``tenants.grants``).
ROLES: dict[str, list[tuple[str, str]]] = {role: VIEW + granted_to(role) for role in ROLE_NAMES}


def sync_roles(group_model: Any, permission_model: Any) -> None:
    """Create the groups and give each exactly its permissions (idempotent).

    A permission whose model a later migration creates is skipped here; that migration runs
    this again (``0007_roles_see_findings``)."""
    for role, perms in ROLES.items():
        group, _ = group_model.objects.get_or_create(name=role)
        wanted = [
            found
            for app_label, codename in perms
            if (
                found := permission_model.objects.filter(
                    content_type__app_label=app_label, codename=codename
                ).first()
            )
        ]
        group.permissions.set(wanted)
