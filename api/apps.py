from __future__ import annotations

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "JSON API"

    def ready(self) -> None:
        from controlplane.recent import forget_on_access_changes

        from .models import ApiToken
        from .tokens import recent_tokens

        # Anything that can change what a cached token may do empties this process's cache.
        forget_on_access_changes(recent_tokens, ApiToken)

        # /metrics takes the API's bearer tokens too; the metrics door imports no other door.
        from observability.auth import use_bearer_authenticator

        from .tokens import authenticate_token

        use_bearer_authenticator(authenticate_token)
