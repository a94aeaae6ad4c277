from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

from .health import healthz, readyz


def metrics(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """``/metrics``, imported when first scraped: ``prometheus_client`` is about 12 MiB that a
    web worker which is never scraped does not hold (docs/performance.md, "Memory")."""
    from .metrics import metrics_view

    return metrics_view(request, *args, **kwargs)


urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),
]
