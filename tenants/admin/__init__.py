"""The Django admin door to tenants.

Like the console, the API and the commands, this door only parses input, calls one service
function and renders. Every change goes through ``tenants.services`` with
``Actor.for_user(request.user)``, so the service checks the user's permission and the audit
feed records ``user:<username>``.

Why not django-fsm-2's ``FSMAdminMixin``: its buttons post through the change form, which
Django refuses to anyone without ``change_tenant`` (no role has it: nobody edits a tenant's
fields), it calls the model's transitions directly (guards only here, no run, no audit event),
and it does not re-check the permission on a plain button POST. The buttons below post to a
small view of their own that calls the service, which checks the permission itself.
"""

from __future__ import annotations

# Each module registers its admin with the site when imported.
from . import approvals, schedules, tenant  # noqa: F401

__all__: list[str] = []
