"""``/api/v1/``: the ninja API, its offline docs assets, and JSON answers for the rest.

Ninja answers a wrong method with an empty 405, its root view raises a bare 404, and it knows
nothing of paths it does not route; all three are wrapped here so that every answer under
``/api/v1/`` is JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.decorators.csrf import csrf_exempt

from tenants.errors import ErrorCode

from .docs import docs_asset
from .errors import json_error
from .views import api


def _json_errors(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            # Ninja's root view (/api/v1/) raises this outside its own error handling.
            return unknown(request)
        if isinstance(response, HttpResponseNotAllowed):
            allowed = response["Allow"]
            response = json_error(
                405,
                ErrorCode.METHOD_NOT_ALLOWED,
                f"{request.method} is not allowed here; use {allowed}.",
            )
            response["Allow"] = allowed
        return response

    return wrapper


def _wrap(patterns: list[URLPattern | URLResolver]) -> list[URLPattern | URLResolver]:
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _json_errors(pattern.callback)
    return patterns


@csrf_exempt
def unknown(request: HttpRequest, rest: str = "") -> HttpResponse:
    return json_error(404, ErrorCode.NOT_FOUND, f"No API endpoint at {request.path}.")


# Not named app_name: include("api.urls") would read that as this module's namespace.
_ninja_patterns, _ninja_app, _ninja_namespace = api.urls

urlpatterns = [
    path("docs/assets/<str:name>", _json_errors(docs_asset), name="api-docs-asset"),
    path("", include((_wrap(_ninja_patterns), _ninja_app), namespace=_ninja_namespace)),
    re_path(r"^(?P<rest>.*)$", unknown),
]
