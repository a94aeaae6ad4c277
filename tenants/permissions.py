"""Permissions read in one query per request instead of two, and a session's user with its
permissions kept for a second."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from controlplane.recent import RecentlyFound

# Session users found in the last CONTROLPLANE_AUTH_CACHE_SECONDS, in this process, by id, with
# their permission set once a request has read it (controlplane.recent says the price;
# tenants.apps empties it whenever this process changes a user, a group or a grant).
recent_users: RecentlyFound[Any, Any] = RecentlyFound()


class OneQueryModelBackend(ModelBackend):
    """Django's ``ModelBackend`` (login, ``is_active``, the same permissions), except that a
    user's own and group permissions are read together, in one ``UNION`` query, the first time
    a request asks; like ``ModelBackend`` it keeps them on the user object, so every later check
    of the request costs nothing. Settings swap it in for ``ModelBackend``."""

    def get_user(self, user_id: Any) -> Any:
        """The session's user (``AuthenticationMiddleware`` asks on every request), the same
        object as a request of the last ``CONTROLPLANE_AUTH_CACHE_SECONDS`` got. Django still
        checks the session's hash against it, so a changed password logs the session out."""
        user = recent_users.get(user_id)
        if user is None:
            user = super().get_user(user_id)
            if user is not None:
                recent_users.put(user_id, user)
        return user

    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            names = ("content_type__app_label", "codename")
            if user_obj.is_superuser:
                rows = Permission.objects.values_list(*names)
            else:
                # No ORDER BY in the parts (Permission's Meta orders): a set needs no order,
                # and PostgreSQL would sort each part for nothing.
                own = Permission.objects.filter(user=user_obj).order_by()
                by_group = Permission.objects.filter(group__user=user_obj).order_by()
                rows = own.values_list(*names).union(by_group.values_list(*names))
            user_obj._perm_cache = {f"{app}.{codename}" for app, codename in rows}
        return user_obj._perm_cache
