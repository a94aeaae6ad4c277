from __future__ import annotations

from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    """The project's own process wiring (no models)."""

    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self) -> None:
        from . import dbhealth

        dbhealth.connect()
