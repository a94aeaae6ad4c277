from __future__ import annotations

from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"

    def ready(self) -> None:
        from . import admission

        # CONTROLPLANE_PROVIDER_LIMITS is read at start: a limit it cannot understand stops
        # the process with its reason, rather than running unlimited.
        admission.limits()
