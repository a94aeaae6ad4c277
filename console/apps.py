from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        # Failed and refused logins go to the audit feed (the console owns the login page).
        from controlplane import throttle

        throttle.connect()
