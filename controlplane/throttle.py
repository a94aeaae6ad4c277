"""Login throttling on top of django-axes, and its entries in the audit feed.

The contract has two limits, 5 failures for one username *from one address* or 20 from one
address within the cool-off window; axes compares its failure count with one limit.
``TwoLimitHandler`` keeps axes' bookkeeping (one ``AccessAttempt`` row per username, address
and browser) and answers "how many failures" in units of the address limit: a (username,
address) pair that reached its own limit counts as a full address limit. A lockout is refused
with the login page and a clear message (429). Locking the pair, not the username, is what
keeps a stranger from locking the owner out (issue 23: five wrong passwords from anywhere used
to lock the account from every address): the owner's other addresses have their own count.

Audit: a wrong password is ``auth.login_failed``; the failure that starts a lockout is one
``auth.locked_out``. Both are events without a tenant, actor ``user:<the name typed>``. A login
refused while the lockout holds writes no row (a script could write them as fast as it
posts): it is counted in ``controlplane_logins_refused`` (``observability.tally``).
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.handlers.database import AxesDatabaseHandler
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from audit.events import EventType
from audit.services import record_event
from observability.tally import LOGINS_REFUSED
from observability.tally import add as add_to_tally

LOCKED_OUT_STATUS = 429


class TwoLimitHandler(AxesDatabaseHandler):
    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        # AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]: one queryset
        # for each, in order.
        counts = [
            attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        ]
        by_pair, by_address = counts
        per_address = settings.CONTROLPLANE_LOGIN_LIMIT_PER_ADDRESS  # = AXES_FAILURE_LIMIT
        pair_spent = by_pair >= settings.CONTROLPLANE_LOGIN_LIMIT_PER_USERNAME
        return max(per_address if pair_spent else 0, by_address)


class ThrottleBackend(AxesStandaloneBackend):
    """Axes' gate in front of the password check, marking the requests it refused so the
    audit receiver can tell a refused login from a wrong password whatever the order in
    which the signal's receivers run."""

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            # No request, no address to count (Django's test client ``login()``, a shell);
            # every login page and the admin's pass theirs, and those are throttled.
            return None
        try:
            return super().authenticate(request, *args, **kwargs)
        except AxesBackendPermissionDenied:
            request.login_refused = True  # type: ignore[attr-defined]
            raise


def client_username(request: HttpRequest, credentials: dict | None = None) -> str | None:
    """The username axes counts under (AXES_USERNAME_CALLABLE).

    Django's login form does not enforce the username's length on the server, and axes stores
    it in a 255-character column: a longer name typed at the login page would end in a
    database error (a 500). No account has a name longer than 150 characters, so counting the
    first 150 is exact for every real account and bounded for everything else.
    """
    if credentials:
        username = credentials.get("username")
    else:
        username = getattr(request, "POST", {}).get("username")
    return None if username is None else str(username)[:150]


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return (
        f"Too many failed logins for this username or from this address: logging in is "
        f"refused for {minutes} minutes. Try again later, or ask an admin to unlock the account."
    )


def lockout_response(
    request: HttpRequest, response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The login page again (for the console and the admin alike), with the reason."""
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    return render(
        request,
        "registration/login.html",
        {"form": form, "locked_out": lockout_message(), "next": request.POST.get("next", "")},
        status=LOCKED_OUT_STATUS,
    )


def _actor(username: Any) -> str:
    # What was typed, made safe to store: printable characters only, bounded.
    name = "".join(c for c in str(username or "") if c.isprintable())[:150]
    return f"user:{name}"


def _address(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    return str(getattr(request, "axes_ip_address", "") or request.META.get("REMOTE_ADDR", ""))


def on_login_failed(
    sender: Any, credentials: dict, request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # A lockout already in force (the backend refused without checking the password): axes
    # signals user_locked_out for it, recorded below as auth.locked_out, not a wrong password.
    if request is not None and getattr(request, "login_refused", False):
        return
    record_event(
        type=EventType.AUTH_LOGIN_FAILED,
        tenant_id=None,
        actor=_actor(credentials.get("username")),
        data={"address": _address(request), "path": request.path if request else ""},
    )


def on_locked_out(
    sender: Any, request: HttpRequest, username: Any, ip_address: Any, **kwargs: Any
) -> None:
    # Axes signals user_locked_out for every login refused while a lockout holds; only the
    # failure that starts the lockout is an event, the refusals are a number.
    if request is not None and getattr(request, "login_refused", False):
        add_to_tally(LOGINS_REFUSED)
        return
    record_event(
        type=EventType.AUTH_LOCKED_OUT,
        tenant_id=None,
        actor=_actor(username),
        data={"address": str(ip_address or ""), "path": request.path if request else ""},
    )


def connect() -> None:
    from axes.signals import user_locked_out
    from django.contrib.auth.signals import user_login_failed

    user_login_failed.connect(on_login_failed, dispatch_uid="controlplane.audit_login_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid="controlplane.audit_locked_out")
