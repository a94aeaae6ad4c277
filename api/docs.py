"""Interactive docs that work offline.

Ninja's Swagger page loads its assets through ``{% static %}`` only when ``ninja`` is in
INSTALLED_APPS, and from a CDN otherwise. Rather than depend on either, the page here is our own
template and the few assets are served straight from the installed ninja package.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Any

import ninja
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from ninja.openapi.docs import DocsBase

ASSET_DIR = Path(ninja.__file__).resolve().parent / "static" / "ninja"
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-init.js", "favicon.png"})


class OfflineSwagger(DocsBase):
    # validatorUrl null: Swagger UI would otherwise send the document to validator.swagger.io.
    settings: dict[str, Any] = {"layout": "BaseLayout", "deepLinking": True, "validatorUrl": None}

    def render_page(self, request: HttpRequest, api: Any, **kwargs: Any) -> HttpResponse:
        swagger_settings = {**self.settings, "url": self.get_openapi_url(api, kwargs)}
        return render(
            request,
            "api/docs.html",
            {
                "api": api,
                "swagger_settings": swagger_settings,
                "asset_url": reverse("api-docs-asset", args=["x"]).removesuffix("x"),
            },
        )


@require_GET
@cache_control(max_age=86400, public=True)
def docs_asset(request: HttpRequest, name: str) -> FileResponse:
    if name not in ASSETS:
        raise Http404(name)
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return FileResponse((ASSET_DIR / name).open("rb"), content_type=content_type)
