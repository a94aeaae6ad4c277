from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        # CONTROLPLANE_APPROVAL_REQUIRED names rows of the operations table, which exist only
        # now: a name that is none of them stops every process at start, with the reason,
        # rather than being an operation that silently never waits.
        from .operations import approval_policy

        approval_policy()

        # The audit feed's ``tenant`` filter names tenants by slug or id; audit imports no
        # tenant, so the tenants app hands it the directory that answers.
        from audit.selectors import use_tenant_directory

        from .selectors import AuditTenantDirectory

        use_tenant_directory(AuditTenantDirectory())

        # A session's user is kept for a second (tenants.permissions.recent_users); any change
        # this process makes to who may do what empties it at once.
        from controlplane.recent import forget_on_access_changes

        from .permissions import recent_users

        forget_on_access_changes(recent_users)
