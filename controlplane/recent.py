"""What a process found about who is asking, kept for ``CONTROLPLANE_AUTH_CACHE_SECONDS``.

A busy client asks many times a second, and every request read who it is and what it may do
again: for a bearer token, the token with its user and the user's permissions (two queries);
for a console session, the user and the permissions (two queries of the session's three). A
user object found here is the same object an earlier request used, so the permission set
``OneQueryModelBackend`` keeps on it was read already and a cached request reads neither.

The price is written in docs/security.md: a token revoked, a user deactivated or a role changed
in *another* process can still be used here until the entry is that old (one second by default;
0 turns the caches off). In this process every such change empties the caches at once
(``forget_on_access_changes``, connected at start by the apps that keep one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

from django.conf import settings

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class RecentlyFound(Generic[K, V]):
    MAX_ENTRIES = 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        ttl = settings.CONTROLPLANE_AUTH_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (self.clock() + ttl, value)

    def forget_all(self, **_: Any) -> None:
        with self._lock:
            self._entries.clear()


def forget_on_access_changes(cache: RecentlyFound[Any, Any], *models: Any) -> None:
    """Empty ``cache`` whenever this process changes what a user may do: a user, a group, a
    membership or a grant saved or deleted (and any of ``models``)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models.signals import m2m_changed, post_delete, post_save

    user = get_user_model()
    for model in (user, Group, *models):
        post_save.connect(cache.forget_all, sender=model, weak=False)
        post_delete.connect(cache.forget_all, sender=model, weak=False)
    for through in (user.groups.through, user.user_permissions.through, Group.permissions.through):
        m2m_changed.connect(cache.forget_all, sender=through, weak=False)
