"""Who may scrape ``/metrics``: the API's bearer tokens (or a logged-in session), of a user
who may view tenants. The numbers say how many tenants are failing and how the fleet grows,
which is not for anyone on the network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse

from controlplane.errors import ErrorCode
from tenants.permission_names import PermissionName

VIEW_PERMISSION = PermissionName.VIEW_TENANT

# Raw bearer token -> its token row (with ``.user``), or None. The API owns its tokens and plugs
# its authenticator in when it starts (``api/apps.py``): this door imports no other door.
_AUTHENTICATORS: list[Callable[[str], Any]] = [lambda raw: None]


def use_bearer_authenticator(authenticate: Callable[[str], Any]) -> None:
    _AUTHENTICATORS.append(authenticate)


def metrics_access(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read the metrics, else the 401/403 answer to give."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw = header.partition(" ")
        token = _AUTHENTICATORS[-1](raw.strip()) if scheme.lower() == "bearer" else None
        if token is None:
            return _refuse(401, "The bearer token is invalid, expired or revoked.")
        user = token.user
    else:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return _refuse(
                401, "Send 'Authorization: Bearer <token>' of a user who can view tenants."
            )
    if not user.has_perm(VIEW_PERMISSION):
        return _refuse(403, "This user may not view tenants, so not their metrics either.")
    return None


def _refuse(status: int, message: str) -> JsonResponse:
    code = ErrorCode.NOT_AUTHENTICATED if status == 401 else ErrorCode.PERMISSION_DENIED
    response = JsonResponse(
        {"error": {"code": code, "message": message, "details": None}}, status=status
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
