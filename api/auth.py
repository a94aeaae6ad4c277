"""Who is asking: a bearer token or the browser session (with CSRF), and what they may read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer
from ninja.security.apikey import APIKeyCookie
from ninja.utils import check_csrf

from tenants.actors import Actor
from tenants.errors import ErrorCode

from .errors import ApiError
from .models import ApiToken
from .tokens import authenticate_token


@dataclass(frozen=True)
class Caller:
    """What ``request.auth`` holds once a request is authenticated."""

    user: Any
    token: ApiToken | None = None

    @property
    def actor(self) -> Actor:
        if self.token is not None:
            return Actor.for_token(self.token.name, self.user)
        return Actor.for_user(self.user)

    @property
    def idempotency_owner(self) -> str:
        """Whose keys these are: each token has its own, a session user has one set."""
        if self.token is not None:
            return f"token:{self.token.pk}"
        return f"user:{self.user.pk}"


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest) -> Caller | None:
        # Ninja's HttpBearer passes over a header that is not "Bearer ..." (another scheme, or
        # an empty one) and lets the session answer. An Authorization header is credentials
        # offered: it is either a bearer token that works or a 401, whatever else is sent.
        header = request.headers.get(self.header)
        if header is None:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.openapi_scheme or not token.strip():
            raise AuthenticationError(
                401, "Malformed Authorization header: send Authorization: Bearer <token>."
            )
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> Caller | None:
        found = authenticate_token(token)
        if found is None:
            # Credentials were offered and are wrong: answer 401 rather than quietly trying
            # the session, so a client with a revoked token learns it at once.
            raise AuthenticationError(401, "The bearer token is invalid, expired or revoked.")
        return Caller(user=found.user, token=found)


class SessionAuth(APIKeyCookie):
    """Django's session, for the browser (and the interactive docs).

    Ninja's own ``SessionAuth`` checks CSRF before it knows whether the session is logged in,
    which turns an anonymous POST into a 403 instead of a 401. Here CSRF is checked only when
    the session would authenticate the request (Django skips the check for safe methods).
    """

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Caller | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if self.csrf and check_csrf(request) is not None:
            raise ApiError(
                403,
                ErrorCode.CSRF_FAILED,
                "CSRF check failed: send the csrftoken cookie's value in X-CSRFToken.",
            )
        return Caller(user=user)


def caller(request: HttpRequest) -> Caller:
    return request.auth  # type: ignore[attr-defined,no-any-return]


def require_read(request: HttpRequest, perm: str, what: str) -> None:
    """Reads have no service function to check for them, so the door checks the permission."""
    Actor.for_user(caller(request).user).require(perm, what)
