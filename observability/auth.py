"""Who may scrape ``/metrics``: the API's bearer tokens (or a logged-in session), of a user
who may view tenants. The numbers say how many tenants are failing and how the fleet grows,
which is not for anyone on the network."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from api.errors import HTTP_CODES, json_error
from api.tokens import authenticate_token
from tenants.permission_names import PermissionName

VIEW_PERMISSION = PermissionName.VIEW_TENANT


def metrics_access(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read the metrics, else the 401/403 answer to give."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, raw = header.partition(" ")
        token = authenticate_token(raw.strip()) if scheme.lower() == "bearer" else None
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
    response = json_error(status, HTTP_CODES[status], message)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response
