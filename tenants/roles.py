"""The three roles and their permissions, created by a migration and kept by ``sync_roles``."""

from __future__ import annotations

from typing import Any

VIEW = [
    ("tenants", "view_tenant"),
    ("tenants", "view_schedule"),
    ("audit", "view_event"),
    ("provisioning", "view_run"),
    ("provisioning", "view_stepexecution"),
    ("provisioning", "view_allocation"),
    ("provisioning", "view_resourcefinding"),
]
OPERATE = [
    ("tenants", "add_tenant"),
    ("tenants", "cancel_provisioning"),
    ("tenants", "reset_provisioning"),
    ("tenants", "retry_provisioning"),
    ("tenants", "suspend_tenant"),
    ("tenants", "resume_tenant"),
    ("tenants", "pause_run"),
    ("tenants", "unpause_run"),
]
ADMINISTER = [("tenants", "decommission_tenant")]
ROLES: dict[str, list[tuple[str, str]]] = {
    "viewer": VIEW,
    "operator": VIEW + OPERATE,
    "admin": VIEW + OPERATE + ADMINISTER,
}


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
