from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "JSON API"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from .models import ApiToken
        from .tokens import recent_tokens

        # Anything that can change what a cached token may do empties this process's cache.
        user = get_user_model()
        for model in (ApiToken, user, Group):
            post_save.connect(recent_tokens.forget_all, sender=model, weak=False)
            post_delete.connect(recent_tokens.forget_all, sender=model, weak=False)
        for through in (
            user.groups.through,
            user.user_permissions.through,
            Group.permissions.through,
        ):
            m2m_changed.connect(recent_tokens.forget_all, sender=through, weak=False)
