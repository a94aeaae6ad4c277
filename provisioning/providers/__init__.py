"""Providers do the real work of one allocation kind; one class per kind, named in settings."""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import Provider, ProviderError, TenantSpec

__all__ = ["Provider", "ProviderError", "TenantSpec", "get_provider"]


@cache
def _provider(path: str) -> Provider:
    return import_string(path)()


def get_provider(kind: str) -> Provider:
    return _provider(settings.CONTROLPLANE_PROVIDERS[kind])
