from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def index(request: HttpRequest) -> HttpResponse:
    return HttpResponse("Tenant provisioning control plane")


urlpatterns = [path("", index, name="index")]
