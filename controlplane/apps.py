from __future__ import annotations

from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    """The project's own process wiring (no models)."""

    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from django.core.signals import request_started

        from .dbhealth import skip_needless_health_checks

        # Connected after Django's close_old_connections (django.db connects it on import), so
        # it sees the connections that one kept and marked for a check.
        request_started.connect(skip_needless_health_checks, dispatch_uid="skip-health-checks")
