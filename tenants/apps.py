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
