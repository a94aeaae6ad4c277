"""The tenant list every door asks: one filter parser (``TenantFilters``) and one selector
(``tenant_list``), so a filter means the same, and a bad one is refused with the same message,
in the API, the console, the commands, the admin and a bulk operation's ``filter``."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from controlplane.filters import (
    Problems,
    boolean,
    choices,
    filter_error,
    known_keys,
    one_of,
    text,
)

from .models import NEEDS_ATTENTION, Condition, Plan, Tenant, TenantState, normalise_slug
from .search import text_match

S = TenantState


# --- the tenant list: one selector every door asks -----------------------------------------
#
# Every door (API, console, commands, admin, a bulk operation's ``filter``) hands what it was
# given to ``TenantFilters.parse`` and asks ``tenant_list``, so a filter means the same and a bad
# one is refused with the same message wherever it is typed (``controlplane.filters``).
#
# ``q`` is one phrase: a tenant matches when its slug, name or admin e-mail contains the whole
# of it (any case), or when ``q`` is its id pasted whole. ``corp acme`` does not find "Acme
# Corp" in any door (the admin's word-splitting search is replaced by this one).

TEXT_MAX = 200
# What a bulk operation's ``filter`` and every list door accept.
TENANT_FILTER_KEYS = ("state", "plan", "condition", "needs_attention", "q", "slug")


@dataclass(frozen=True)
class TenantFilters:
    states: tuple[str, ...] = ()
    plan: str = ""
    conditions: tuple[str, ...] = ()
    needs_attention: bool = False
    q: str = ""
    slug: str = ""

    @classmethod
    def parse(
        cls,
        *,
        state: Any = None,
        plan: Any = None,
        condition: Any = None,
        needs_attention: Any = None,
        q: Any = None,
        slug: Any = None,
    ) -> TenantFilters:
        """Check every filter at once; raise one ``validation_error`` naming each bad one.

        ``state`` and ``condition`` are one value, a comma list, or a list of them.
        """
        problems: Problems = {}
        parsed = cls(
            states=choices(state, "state", S.values, "state", problems),
            plan=one_of(plan, "plan", Plan.values, "plan", problems),
            conditions=choices(condition, "condition", Condition.values, "condition", problems),
            needs_attention=boolean(needs_attention, "needs_attention", problems),
            q=text(q, "q", TEXT_MAX, problems),
            slug=normalise_slug(text(slug, "slug", 63, problems), lookup=True),
        )
        if problems:
            raise filter_error(problems)
        return parsed

    @classmethod
    def from_mapping(cls, given: Any) -> TenantFilters:
        """A filter given as an object (a bulk operation's ``filter``): the same keys and the
        same checks as a list's query string; an unknown key is refused."""
        if not isinstance(given, dict):
            raise filter_error({"filter": ["filter must be an object."]})
        known_keys(given, TENANT_FILTER_KEYS)
        return cls.parse(**given)

    def as_mapping(self) -> dict[str, Any]:
        """The filters given, as ``from_mapping`` reads them back (what an approval keeps)."""
        given = {
            "state": self.state,
            "plan": self.plan,
            "condition": ",".join(self.conditions),
            "needs_attention": self.needs_attention,
            "q": self.q,
            "slug": self.slug,
        }
        return {k: v for k, v in given.items() if v}

    @property
    def state(self) -> str:
        return ",".join(self.states)

    @property
    def active(self) -> bool:
        return bool(
            self.states
            or self.plan
            or self.conditions
            or self.needs_attention
            or self.q
            or self.slug
        )


def tenant_list(filters: TenantFilters | None = None) -> QuerySet[Tenant]:
    """Tenants matching ``filters`` (unordered: each door pages it by its own keyset).

    ``q`` matches slug, name or admin e-mail containing it (case-insensitive; pg_trgm indexes
    back it on PostgreSQL, see ``tenants.search``), or a tenant's id pasted whole.
    """
    filters = filters or TenantFilters()
    qs = Tenant.objects.all()
    if filters.states:
        qs = qs.filter(state__in=filters.states)
    if filters.plan:
        qs = qs.filter(plan=filters.plan)
    if filters.conditions:
        qs = qs.filter(condition__in=filters.conditions)
    if filters.needs_attention:
        qs = qs.filter(condition__in=NEEDS_ATTENTION)
    if filters.slug:
        qs = qs.filter(slug=filters.slug)
    if filters.q:
        match = text_match(filters.q, qs.db)
        with contextlib.suppress(ValueError):  # an id pasted into the search box
            match |= Q(pk=uuid.UUID(filters.q))
        qs = qs.filter(match)
    return qs
