"""Login handling that also works for htmx's background requests."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required as django_login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.http import urlencode
from django_htmx.http import HttpResponseClientRedirect


def login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's ``login_required``, except for an htmx poll from an expired session.

    A plain redirect would be followed by the XHR and the login page swapped into the middle
    of the tenant page; ``HX-Redirect`` makes the whole browser go to the login page instead,
    coming back to the page the operator was on.
    """
    guarded = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        htmx = getattr(request, "htmx", None)
        if htmx and not request.user.is_authenticated:
            back = htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?{urlencode({'next': back})}")
        return guarded(request, *args, **kwargs)

    return wrapper


def refusal(perm: str, what: str) -> PermissionDenied:
    """A refusal that names the missing permission and the roles that have it."""
    from django.contrib.auth.models import Group

    app_label, codename = perm.split(".", 1)
    roles = sorted(
        Group.objects.filter(
            permissions__codename=codename, permissions__content_type__app_label=app_label
        ).values_list("name", flat=True)
    )
    who = f" (the {', '.join(roles)} role{'s' if len(roles) > 1 else ''} give it)" if roles else ""
    return PermissionDenied(
        f"You do not have permission to {what}: it needs the permission “{perm}”{who}."
    )


def permission_required(perm: str, what: str) -> Callable[..., Any]:
    """Refuse with 403 unless the user has ``perm``; the message names it (``refusal``)."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm(perm):
                raise refusal(perm, what)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
