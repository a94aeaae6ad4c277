"""Every Django permission the doors check, once.

``PermissionName.VIEW_TENANT`` instead of ``"tenants.view_tenant"``: a typo is an
``AttributeError`` at import, not a check that silently refuses everyone. The values are
Django's ``app_label.codename`` strings, so ``user.has_perm(PermissionName.X)`` works as it is.
(``tenants/permissions.py`` is the authentication backend that reads them.)
"""

from __future__ import annotations

from enum import StrEnum


class PermissionName(StrEnum):
    VIEW_TENANT = "tenants.view_tenant"
    ADD_TENANT = "tenants.add_tenant"
    CANCEL_PROVISIONING = "tenants.cancel_provisioning"
    RESET_PROVISIONING = "tenants.reset_provisioning"
    RETRY_PROVISIONING = "tenants.retry_provisioning"
    SUSPEND_TENANT = "tenants.suspend_tenant"
    RESUME_TENANT = "tenants.resume_tenant"
    DECOMMISSION_TENANT = "tenants.decommission_tenant"
    CHANGE_PLAN_TENANT = "tenants.change_plan_tenant"
    PAUSE_RUN = "tenants.pause_run"
    UNPAUSE_RUN = "tenants.unpause_run"
    VIEW_SCHEDULE = "tenants.view_schedule"
    VIEW_EVENT = "audit.view_event"
    VIEW_RUN = "provisioning.view_run"
    VIEW_STEPEXECUTION = "provisioning.view_stepexecution"
    VIEW_ALLOCATION = "provisioning.view_allocation"
    VIEW_RESOURCEFINDING = "provisioning.view_resourcefinding"
    CHANGE_APITOKEN = "api.change_apitoken"

    @property
    def app_label(self) -> str:
        return self.value.partition(".")[0]

    @property
    def codename(self) -> str:
        return self.value.partition(".")[2]
