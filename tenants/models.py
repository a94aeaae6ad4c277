"""What a tenant is and which moves its state may make.

The transitions here are guards only: they say whether a move is allowed and set the new
state. Everything else an operation does (locks, runs, allocations, audit events, tasks) lives
in ``tenants.services``.
"""

from __future__ import annotations

import re
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.utils import timezone
from django_fsm import RETURN_VALUE, FSMField, FSMModelMixin, transition

from .grants import model_permissions

models.CharField.register_lookup(Length)

SLUG_PATTERN = r"^[a-z](?:[a-z0-9]|-(?!-))*[a-z0-9]$"
SLUG_RE = re.compile(SLUG_PATTERN)
RESERVED_SLUGS = frozenset({"admin", "api", "www", "static", "media", "app", "console", "status"})
# The rule in a sentence, for every form that asks for a slug (the pattern says the same).
SLUG_HELP = (
    "3–63 lowercase letters, digits and single hyphens; starts with a letter and ends with a "
    "letter or digit."
)


def normalise_slug(value: str, *, lookup: bool = False) -> str:
    """A slug as typed: the one normalisation of a slug in every door (API, console, admin,
    commands). Spaces around it are what a copy and paste adds, so they are trimmed. A slug
    given to create a tenant or to confirm a decommission is otherwise checked as typed (an
    uppercase letter, an inner space or an underscore is refused by ``validate_slug`` or the
    confirmation, never rewritten into another slug). A slug given to find a tenant
    (``lookup``: ``tenant show ACME``, ``?slug=``, ``?tenant=``) is lowercased too: no tenant
    has an uppercase slug, so that can only be what was meant."""
    value = value.strip()
    return value.lower() if lookup else value


def validate_slug(value: str) -> None:
    if not 3 <= len(value) <= 63:
        raise ValidationError("A slug has 3 to 63 characters.", code="slug_length")
    if not SLUG_RE.match(value):
        raise ValidationError(
            "Use lowercase letters, digits and single hyphens; start with a letter and end "
            "with a letter or digit.",
            code="slug_format",
        )
    if value in RESERVED_SLUGS:
        raise ValidationError(f"'{value}' is reserved; choose another slug.", code="slug_reserved")


class TenantState(models.TextChoices):
    PENDING = "pending", "Pending"
    PROVISIONING = "provisioning", "Provisioning"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    SUSPENDED = "suspended", "Suspended"
    # A live tenant whose plan is being changed by a ``plan_change`` run: it serves on its old
    # plan until the run completes, and is ``active`` again whatever the run's outcome.
    UPDATING = "updating", "Updating"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


class Condition(models.TextChoices):
    """What a tenant needs from an operator, at a glance (the contract's "Conditions").

    Derived by ``provisioning.conditions.derive_condition`` and stored on the tenant by the
    transactions that change its inputs, so the fleet can be filtered by it with an index.
    """

    PROGRESSING = "progressing", "Progressing"
    RETRYING = "retrying", "Retrying"
    LOST = "lost", "Lost try, resending"
    STALLED = "stalled", "Stalled"
    ORPHANED = "orphaned", "Orphaned"
    CANCELLING = "cancelling", "Cancelling"
    ROLLING_BACK = "rolling_back", "Rolling back"
    RELEASE_FAILED = "release_failed", "Release failed"
    DECOMMISSIONING = "decommissioning", "Decommissioning"
    # An operator paused the live run at a step boundary; nothing moves until unpause.
    PAUSED = "paused", "Paused"
    FAILED = "failed", "Failed"
    # An active tenant whose last plan change failed (its error recorded, every step reverted):
    # until a change succeeds, or an operator starts one again.
    CHANGE_FAILED = "change_failed", "Plan change failed"
    OK = "ok", "OK"


# The conditions an operator must act on; everything else resolves by itself or is fine.
NEEDS_ATTENTION: tuple[str, ...] = (
    Condition.STALLED,
    Condition.ORPHANED,
    Condition.RELEASE_FAILED,
    Condition.FAILED,
    Condition.CHANGE_FAILED,
)
# Moving by itself: the console list keeps refreshing while any tenant is in one of these.
IN_FLIGHT: tuple[str, ...] = (
    Condition.PROGRESSING,
    Condition.RETRYING,
    Condition.LOST,
    Condition.CANCELLING,
    Condition.ROLLING_BACK,
    Condition.DECOMMISSIONING,
)


class Plan(models.TextChoices):
    STARTER = "starter", "Starter"
    GROWTH = "growth", "Growth"
    ENTERPRISE = "enterprise", "Enterprise"


# What a plan decides, beyond its name (which is also the billing plan): the size of the
# tenant's database. A plan change moves each of these from the old plan's value to the new's.
PLAN_DATABASE_GB: dict[str, int] = {
    Plan.STARTER: 1,
    Plan.GROWTH: 10,
    Plan.ENTERPRISE: 100,
}


S = TenantState

# The states a tenant is in while a run of it is live (pause, unpause and the watchdog read
# this one tuple; a second kind of run adds its state here).
LIVE_RUN_STATES: tuple[str, ...] = (S.PROVISIONING, S.UPDATING)


class Tenant(FSMModelMixin, models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(max_length=63, validators=[validate_slug])
    name = models.CharField(max_length=200)
    plan = models.CharField(max_length=20, choices=Plan.choices)
    admin_email = models.EmailField(max_length=254)
    state = FSMField(default=S.PENDING, choices=S.choices, protected=True, db_index=True)
    # The handle of the current provisioning run. Deliberately not a foreign key: a handle can
    # name a run that no longer exists (an orphaned handle), and the watchdog must see that.
    workflow_id = models.UUIDField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    failed_activity = models.CharField(max_length=64, blank=True, default="")
    decommission_requested_at = models.DateTimeField(null=True, blank=True)
    # The approval policy (``tenants.approvals``): the operations of this tenant that wait for a
    # second person, space-separated ("" when none). Kept exact by the transactions that open
    # and settle an ``ApprovalRequest`` (under this row's lock), so a guard knows without a query.
    awaiting_approval = models.CharField(max_length=200, blank=True, default="")
    # Derived (see ``Condition``); written only through ``provisioning.conditions``.
    condition = models.CharField(
        max_length=20, choices=Condition.choices, default=Condition.OK, editable=False
    )
    # Beaten by the decommission task while it works; the watchdog claims a stopped one by a
    # compare-and-swap on it, so it resends a decommission once, not on every pass.
    decommission_heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    decommissioned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["slug"],
                condition=~Q(state=S.DECOMMISSIONED),
                name="tenant_slug_unique_unless_decommissioned",
                violation_error_message="This slug is already used by another tenant.",
            ),
            models.CheckConstraint(
                condition=Q(slug__length__gte=3, slug__length__lte=63)
                & Q(slug__regex=SLUG_PATTERN)
                & ~Q(slug__in=sorted(RESERVED_SLUGS)),
                name="tenant_slug_format",
            ),
            models.CheckConstraint(condition=Q(plan__in=Plan.values), name="tenant_plan_known"),
            models.CheckConstraint(condition=Q(state__in=S.values), name="tenant_state_known"),
            models.CheckConstraint(
                condition=~Q(state__in=[S.PROVISIONING, S.UPDATING]) | Q(workflow_id__isnull=False),
                name="tenant_provisioning_has_handle",
            ),
        ]
        indexes = [
            models.Index(fields=["slug"], name="tenant_slug_idx"),
            models.Index(fields=["state", "created_at", "id"], name="tenant_state_created_idx"),
            models.Index(
                fields=["condition", "created_at", "id"], name="tenant_condition_created_idx"
            ),
            # needs_attention=true is an IN over four conditions: a partial index keeps that
            # page one range scan in the list's order, however many tenants are fine.
            models.Index(
                fields=["created_at", "id"],
                condition=Q(condition__in=NEEDS_ATTENTION),
                name="tenant_attention_created_idx",
            ),
        ]
        # One per operation of the table, from its rows (``tenants.grants``).
        permissions = model_permissions()

    def __str__(self) -> str:
        return self.slug

    @property
    def waiting_operations(self) -> list[str]:
        """The operations of this tenant waiting for a second person's approval."""
        return self.awaiting_approval.split()

    @property
    def needs_attention(self) -> bool:
        return self.condition in NEEDS_ATTENTION

    # --- transitions (guards only) ----------------------------------------------------------
    # Sources and targets only. Whether an operation is allowed beyond its source state (a
    # recorded error, a live run, a decommission under way) is decided by one guard per
    # operation in ``tenants.services``, which also words the refusal; the permission each needs
    # is named once, in ``tenants.operations``.

    @transition(field=state, source=S.PENDING, target=S.PROVISIONING)
    def start(self) -> None:
        """The first run of a tenant created with ``start``."""

    @transition(
        field=state,
        source=[S.FAILED, S.PENDING],
        target=S.PROVISIONING,
    )
    def retry(self) -> None:
        self.last_error = ""
        self.failed_activity = ""

    @transition(
        field=state,
        source=[S.PROVISIONING, S.UPDATING],
        target=RETURN_VALUE(S.PROVISIONING, S.UPDATING),
    )
    def request_cancel(self) -> str:
        """Cancel is asked for; the tenant stays where it is while compensation runs."""
        return str(self.state)

    @transition(field=state, source=list(LIVE_RUN_STATES), target=RETURN_VALUE(*LIVE_RUN_STATES))
    def pause(self) -> str:
        """The live run is paused at a step boundary; the tenant stays where it is."""
        return str(self.state)

    @transition(field=state, source=list(LIVE_RUN_STATES), target=RETURN_VALUE(*LIVE_RUN_STATES))
    def unpause(self) -> str:
        """The paused run goes on; the tenant stays where it is."""
        return str(self.state)

    @transition(field=state, source=S.PROVISIONING, target=S.PENDING)
    def finish_cancel(self) -> None:
        pass

    @transition(
        field=state,
        source=[S.PENDING, S.PROVISIONING],
        target=S.PENDING,
    )
    def reset(self) -> None:
        self.workflow_id = None
        self.last_error = ""
        self.failed_activity = ""

    @transition(field=state, source=S.PROVISIONING, target=S.ACTIVE)
    def complete(self) -> None:
        pass

    @transition(field=state, source=S.PROVISIONING, target=S.FAILED)
    def fail(self) -> None:
        pass

    # A plan change: active -> updating, and back to active whatever the run's outcome (on
    # the new plan once it completes, on the old one after a cancel or a failure).

    @transition(field=state, source=S.ACTIVE, target=S.UPDATING)
    def start_change(self) -> None:
        # Starting a change again is how an operator clears a failed one.
        self.last_error = ""
        self.failed_activity = ""

    @transition(field=state, source=S.UPDATING, target=S.ACTIVE)
    def complete_change(self) -> None:
        pass

    @transition(field=state, source=S.UPDATING, target=S.ACTIVE)
    def finish_cancel_change(self) -> None:
        pass

    @transition(field=state, source=S.UPDATING, target=S.ACTIVE)
    def fail_change(self) -> None:
        pass

    @transition(
        field=state,
        source=S.ACTIVE,
        target=S.SUSPENDED,
    )
    def suspend(self) -> None:
        pass

    @transition(
        field=state,
        source=S.SUSPENDED,
        target=S.ACTIVE,
    )
    def resume(self) -> None:
        pass

    @transition(
        field=state,
        source=[S.ACTIVE, S.SUSPENDED, S.PENDING, S.FAILED],
        target=S.DECOMMISSIONED,
    )
    def decommission(self) -> None:
        pass


# --- the approval policy ---------------------------------------------------------------------


class ApprovalStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    APPROVED = "approved", "Approved"
    WITHDRAWN = "withdrawn", "Withdrawn"
    EXPIRED = "expired", "Expired"
    REFUSED = "refused", "Refused"  # approved, but the checks of that moment refused it


class ApprovalRequest(models.Model):
    """An operation (on one tenant, or a bulk selection) waiting for a second person.

    Opened by ``tenants.approvals`` when ``CONTROLPLANE_APPROVAL_REQUIRED`` names the
    operation (or ``bulk``); settled once: approved (then run as its author with the checks of
    that moment: ``refused`` when they say no), withdrawn, or expired by the periodic pass.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    operation = models.CharField(max_length=40)
    # One tenant, or none for a bulk operation (then ``selection`` says which tenants).
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="approvals"
    )
    selection = models.JSONField(default=dict, blank=True)  # bulk: {"ids"} or {"filter"}, "limit"
    reason = models.TextField(blank=True, default="")
    options = models.JSONField(default=dict, blank=True)  # the operation's inputs (faults...)
    requested_by = models.CharField(max_length=150)  # the person (a token acts for its user)
    requested_actor = models.CharField(max_length=200)  # the audit label: user:..., token:...
    # The user whose permissions the operation runs with once approved (null: the shell).
    requested_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    trusted = models.BooleanField(default=False)  # asked at the server's shell: runs trusted
    requested_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=20, choices=ApprovalStatus.choices, default=ApprovalStatus.WAITING
    )
    decided_by = models.CharField(max_length=150, blank=True, default="")
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True, default="")  # what happened, in a sentence

    class Meta:
        ordering = ["-requested_at", "-id"]
        default_permissions = ("view",)
        indexes = [
            models.Index(fields=["status", "expires_at"], name="approval_status_expiry_idx"),
        ]
        constraints = [
            # One waiting request per operation and tenant: asking again is refused, not queued.
            models.UniqueConstraint(
                fields=["tenant", "operation"],
                condition=Q(status="waiting", tenant__isnull=False),
                name="approval_one_waiting_per_tenant_operation",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["waiting", "approved", "withdrawn", "expired", "refused"]),
                name="approval_status_known",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.operation} of {self.target} ({self.status})"

    @property
    def is_bulk(self) -> bool:
        return self.tenant_id is None

    @property
    def target(self) -> str:
        if self.tenant_id is not None:
            return self.tenant.slug
        if ids := self.selection.get("ids"):
            return f"{len(ids)} selected tenant{'' if len(ids) == 1 else 's'}"
        where = ", ".join(f"{k}={v}" for k, v in sorted(self.selection.get("filter", {}).items()))
        return f"the tenants where {where}"


# --- the fleet's counts ---------------------------------------------------------------------


class TenantCountQuerySet(models.QuerySet["TenantCount"]):
    def totals(self) -> dict[tuple[str, str], int]:
        """Tenants per ``(state, condition)``, exact, without reading the tenant table.

        The sum of the deltas the tenant table's trigger writes (one statement over a few dozen
        rows).
        """
        grouped = self.order_by().values_list("state", "condition").annotate(n=models.Sum("n"))
        return {(state, condition): n for state, condition, n in grouped if n}

    def compact(self) -> int:
        """Fold the deltas into one row per ``(state, condition)``; returns the rows folded.

        The totals do not change: the deleted rows' sums are inserted by the same statement.
        Safe beside writers (their uncommitted deltas are invisible here and stay) and beside
        another compaction (a row it already deleted is skipped, not counted twice). Does
        nothing below ``COMPACT_AFTER`` rows, so a quiet fleet is not rewritten every pass.
        """
        if self.count() <= COMPACT_AFTER:
            return 0
        from django.db import connections

        with connections[self.db].cursor() as cursor:
            cursor.execute(
                "WITH gone AS (DELETE FROM tenants_tenantcount RETURNING state, condition, n) "
                "INSERT INTO tenants_tenantcount (state, condition, n) "
                "SELECT state, condition, SUM(n) FROM gone GROUP BY state, condition "
                "HAVING SUM(n) <> 0"
            )
            return cursor.rowcount


# Deltas above this many rows are folded by the next watchdog pass; reading 200 rows is
# still far under a millisecond, so compaction is for tidiness, never for exactness.
COMPACT_AFTER = 200


class TenantCount(models.Model):
    """One change to the number of tenants in a ``(state, condition)``: +n or -n.

    Written only by PostgreSQL triggers on ``tenants_tenant`` (migration
    ``0008_tenant_counts``), in the transaction that inserts, updates or deletes the tenant,
    so the sum per key is the exact count whatever door or task made the change, and a
    rolled-back change leaves no delta. Appending instead of updating one counter row per key
    means two transactions moving tenants never wait for each other (or deadlock) on a
    counter. ``TenantCount.objects.totals()`` reads them; ``compact()`` (every watchdog pass)
    folds them back to one row per key.
    """

    id = models.BigAutoField(primary_key=True)
    state = models.CharField(max_length=20)
    condition = models.CharField(max_length=20)
    n = models.IntegerField()

    objects = TenantCountQuerySet.as_manager()

    class Meta:
        # Internal bookkeeping: no one is ever granted "change tenant count".
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.state}/{self.condition} {self.n:+d}"


def lock_tenant(tenant_id: uuid.UUID | str, *, must_exist: bool = True) -> Tenant | None:
    """The tenant's row, locked (``SELECT … FOR UPDATE``) until the transaction ends.

    The one lock that orders everything done to a tenant: an operation, a step recording what
    it allocated, the watchdog, a release, reconciliation. Whoever holds it sees the tenant's
    state and handle as they are, and nobody else changes them before the commit. Call it
    inside ``transaction.atomic()``. ``must_exist=False`` answers None for a tenant that is
    gone (its row deleted) instead of raising ``Tenant.DoesNotExist``.
    """
    rows = Tenant.objects.select_for_update().filter(pk=tenant_id)
    if must_exist:
        return rows.get()
    return rows.first()


# --- scheduled operations -------------------------------------------------------------------


class ScheduleStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    DONE = "done", "Done"
    REFUSED = "refused", "Refused"
    CANCELLED = "cancelled", "Cancelled"


class Schedule(models.Model):
    """An operation (on one tenant, or a bulk one) asked for now, to run at ``at``.

    Run once by the beat's schedule pass (``tenants.schedules.run_due``) as its author, with
    the author's permissions and the tenant's state at that moment, through the same
    ``perform`` / ``bulk`` as every door. A refusal then is recorded (``refused``, with its
    reason in ``outcome``), never an error. ``trusted`` marks a schedule made at the server's
    shell (``manage.py``), whose author is no user of the database.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    operation = models.CharField(max_length=40)
    actor = models.CharField(max_length=200)  # the audit label of the author
    author = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    trusted = models.BooleanField(default=False)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, null=True, blank=True, related_name="schedules"
    )
    bulk = models.BooleanField(default=False)
    ids = models.JSONField(default=list, blank=True)
    filter = models.JSONField(default=dict, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    reason = models.TextField(blank=True, default="")
    faults = models.JSONField(default=dict, blank=True)
    # The operation's own arguments (``Operation.options``: change_plan's ``plan``), checked
    # when it is scheduled and passed to ``perform`` / ``bulk`` when it runs.
    options = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField()
    status = models.CharField(
        max_length=20, choices=ScheduleStatus.choices, default=ScheduleStatus.SCHEDULED
    )
    # What happened when it ran: {"code", "message"} (and for a bulk, its results).
    outcome = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            # The pass reads the few due ones among many finished.
            models.Index(
                fields=["at"],
                condition=Q(status="scheduled"),
                name="schedule_due_idx",
            ),
        ]
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.operation} at {self.at:%Y-%m-%d %H:%M}Z ({self.status})"
