from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from audit.signals import event_recorded

        from . import outbox
        from .models import Subscription

        event_recorded.connect(outbox.on_event_recorded, dispatch_uid="webhooks.outbox")
        post_save.connect(outbox.invalidate, sender=Subscription, dispatch_uid="webhooks.inv1")
        post_delete.connect(outbox.invalidate, sender=Subscription, dispatch_uid="webhooks.inv2")
