from __future__ import annotations

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"

    def ready(self) -> None:
        # The audit feed's ``tenant`` filter names tenants by slug or id; audit imports no
        # tenant, so the tenants app hands it the directory that answers.
        from audit.selectors import use_tenant_directory

        from .selectors import AuditTenantDirectory

        use_tenant_directory(AuditTenantDirectory())
