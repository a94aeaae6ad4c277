"""Who acts: the label the audit feed records and the user whose permissions apply.

Every door makes one (``Actor.for_user``, ``for_token``, ``shell``) and hands it to
``tenants.operations``; it lives on its own so a door needs nothing from ``tenants.services``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser

from audit.services import SYSTEM

from .errors import ErrorCode, OperationError


@dataclass(frozen=True)
class Actor:
    """Who acts: the audit label, and the user whose permissions apply (None: trusted)."""

    label: str
    user: Any = None

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(label=f"user:{user.get_username()}", user=user)

    @classmethod
    def for_token(cls, token_name: str, user: Any) -> Actor:
        return cls(label=f"token:{token_name}", user=user)

    @classmethod
    def system(cls) -> Actor:
        return cls(label=SYSTEM)

    @classmethod
    def shell(cls, name: str) -> Actor:
        """Someone at the server's shell: trusted like the database itself."""
        return cls(label=f"user:{name}")

    @property
    def person(self) -> str:
        """Who this is as a person: a token acts for its user, so four eyes compares users."""
        if self.user is not None:
            return str(self.user.get_username())
        return self.label.split(":", 1)[-1]

    def require(self, perm: str, what: str) -> None:
        if self.user is None:
            return
        if isinstance(self.user, AnonymousUser) or not self.user.has_perm(perm):
            raise OperationError(
                ErrorCode.PERMISSION_DENIED, f"You do not have permission to {what}."
            )
