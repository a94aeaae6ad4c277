"""Log lines written while a request is served carry the tenant its URL names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from .logs import log_context


class LogContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = log_context.set({})
        try:
            return self.get_response(request)
        finally:
            log_context.reset(token)

    def process_view(
        self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]
    ) -> None:
        tenant_id = kwargs.get("tenant_id")
        if tenant_id is not None:
            log_context.set({"tenant_id": str(tenant_id)})
