"""Runs, step executions, the allocation ledger, and the records of the stand-in services."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from tenants.models import Tenant

STEPS: tuple[str, ...] = (
    "validate_request",
    "allocate_storage",
    "allocate_identity",
    "create_database",
    "configure_dns",
    "setup_billing",
    "invite_admin",
    "mark_active",
)
STEP_KIND: dict[str, str] = {
    "allocate_storage": "storage",
    "allocate_identity": "identity",
    "create_database": "database",
    "configure_dns": "dns",
    "setup_billing": "billing",
    "invite_admin": "invite",
}
KINDS: tuple[str, ...] = tuple(STEP_KIND.values())
COMPENSATION: dict[str, str] = {
    "storage": "release_storage",
    "identity": "release_identity",
    "database": "drop_database",
    "dns": "remove_dns",
    "billing": "cancel_billing",
    "invite": "revoke_invite",
}


# The plan change's steps (run kind ``plan_change``; see provisioning.kinds). Step names are
# unique across kinds, so a step's name alone says what it does.
PLAN_CHANGE_STEPS: tuple[str, ...] = (
    "validate_change",
    "resize_database",
    "change_billing_plan",
    "apply_plan",
)


class RunKind(models.TextChoices):
    PROVISION = "provision", "Provision"
    PLAN_CHANGE = "plan_change", "Plan change"


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    CANCELLING = "cancelling", "Cancelling"
    CANCELLED = "cancelled", "Cancelled"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    ORPHANED = "orphaned", "Orphaned"


LIVE_RUN_STATUSES = (RunStatus.RUNNING, RunStatus.CANCELLING)


class Run(models.Model):
    """One provisioning attempt: the tenant's workflow handle while it is live.

    ``status`` and the tenant's ``workflow_id`` are the fence every worker write checks: a run
    that is not the tenant's live run can no longer change the tenant.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="runs")
    attempt = models.PositiveIntegerField()
    # Which saga the run is (provisioning.kinds): its steps, its working state, how it ends.
    kind = models.CharField(max_length=20, choices=RunKind.choices, default=RunKind.PROVISION)
    # What the kind needs beyond the tenant: for a plan change ``{"from": P, "to": Q}``.
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.RUNNING)
    # Set when a step ran out of tries: the run is rolling back before it becomes failed.
    compensating = models.BooleanField(default=False)
    current_step = models.CharField(max_length=64, blank=True, default="")
    faults = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=200)
    error = models.TextField(blank=True, default="")
    failed_step = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Heartbeat of whatever works on the run now (a step or the compensation).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    stalled_at = models.DateTimeField(null=True, blank=True)
    # The broker priority of its steps: 0 for work started for one tenant, higher (read later)
    # for work a bulk operation started (provisioning.admission).
    priority = models.PositiveSmallIntegerField(default=0)
    # Paused by an operator (``tenants.services.pause_run``): the step at work finishes and
    # its answer is recorded, but no next step is dispatched until unpause; the watchdog
    # leaves a paused run alone. Null when not paused.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "attempt"], name="run_tenant_attempt"),
        ]
        indexes = [models.Index(fields=["status"], name="run_status_idx")]

    def __str__(self) -> str:
        return f"{self.tenant_id} attempt {self.attempt} ({self.status})"

    @property
    def is_live(self) -> bool:
        return self.status in LIVE_RUN_STATUSES


class StepStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    DISPATCHED = "dispatched", "Dispatched"
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class StepExecution(models.Model):
    """One step of one run. ``token`` names the current try; only that try may finish it."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=20, choices=StepStatus.choices, default=StepStatus.WAITING)
    reused = models.BooleanField(default=False)
    tries = models.PositiveSmallIntegerField(default=0)
    token = models.UUIDField(null=True, blank=True)
    # When the current try's message may first be picked up (later than now under backoff).
    due_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # What a queued step waits for before it may start (a provider's limit), "" when nothing:
    # it is still queued, has spent nothing and holds no worker (provisioning.admission).
    waiting_for = models.CharField(max_length=200, blank=True, default="")
    # How often the watchdog published a queued try's message again because it may have been
    # lost (same token: not a new try), and when it last did; see provisioning.watchdog.
    republished = models.PositiveIntegerField(default=0)
    republished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="step_run_name"),
        ]
        indexes = [
            models.Index(fields=["status", "due_at"], name="step_status_due_idx"),
            # The waiters of provider limits, few among many steps: woken oldest first.
            models.Index(fields=["due_at"], condition=~Q(waiting_for=""), name="step_waiting_idx"),
            # /metrics sums the re-publishes from these few rows, whatever the history.
            models.Index(
                fields=["republished"],
                condition=models.Q(republished__gt=0),
                name="step_republished_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


class Allocation(models.Model):
    """The ledger: every resource ever allocated for a tenant, and whether it is still held.

    A row is written the moment a provider answers, whichever run asked and whatever that run
    has become since, so no allocation is ever forgotten. At most one held row per tenant and
    kind: a step that finds one reuses it.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="allocations")
    kind = models.CharField(max_length=20)
    external_id = models.CharField(max_length=500)
    allocated_by = models.ForeignKey(
        Run, on_delete=models.PROTECT, null=True, blank=True, related_name="allocated"
    )
    released_by = models.ForeignKey(
        Run, on_delete=models.PROTECT, null=True, blank=True, related_name="released"
    )
    allocated_at = models.DateTimeField(auto_now_add=True)
    released_at = models.DateTimeField(null=True, blank=True)
    release_attempts = models.PositiveSmallIntegerField(default=0)
    release_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["allocated_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind"],
                condition=Q(released_at__isnull=True),
                name="allocation_one_held_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id}"

    @property
    def held(self) -> bool:
        return self.released_at is None


class AllocationIntent(models.Model):
    """Written before a provider is called: the tenant is about to hold one ``kind``.

    Providers find what they made for a tenant by the tenant's id (``Provider.lookup``), so an
    intent is enough to release what a call made even when its worker died before the answer
    reached the ledger. It stays open from just before the call until the answer is recorded
    (``recorded``) or a rollback, decommission or reconciliation releases what the provider
    finds (``released``, or ``nothing`` when it finds nothing). At most one open per tenant and
    kind.
    """

    class Outcome(models.TextChoices):
        OPEN = "", "Open"
        RECORDED = "recorded", "Recorded in the ledger"
        RELEASED = "released", "Released by lookup"
        NOTHING = "nothing", "Nothing was made"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="intents")
    kind = models.CharField(max_length=20)
    run = models.ForeignKey(Run, on_delete=models.PROTECT, null=True, related_name="intents")
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True, default="")
    external_id = models.CharField(max_length=500, blank=True, default="")
    release_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "kind"],
                condition=Q(resolved_at__isnull=True),
                name="allocation_intent_one_open_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} intent ({self.outcome or 'open'})"


class AllocationChange(models.Model):
    """The ledger's record of a change to a held allocation (a resized database, a billing
    account moved to another plan): which attribute, from what to what, by which run.

    Written as an *intent* (``intended``) under the tenant's lock before the provider is called,
    ``applied`` once its answer is recorded, ``reverted`` once a rollback put ``before`` back.
    A run that is cancelled or fails reverts, newest first, every change of its own that is not
    ``reverted`` (intents included: the call may have landed), so the allocations a tenant
    holds afterwards are exactly what they were before the run.
    """

    class Status(models.TextChoices):
        INTENDED = "intended", "Intended"
        APPLIED = "applied", "Applied"
        REVERTED = "reverted", "Reverted"

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="changes")
    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT, related_name="changes")
    run = models.ForeignKey(Run, on_delete=models.PROTECT, related_name="changes")
    step = models.CharField(max_length=64)
    kind = models.CharField(max_length=20)
    attribute = models.CharField(max_length=40)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INTENDED)
    created_at = models.DateTimeField(auto_now_add=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    revert_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="allocation_change_run_step"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.attribute} {self.before!r} -> {self.after!r} ({self.status})"


class ProviderStart(models.Model):
    """A start of a step of a rate-limited provider kind: a claim counts the last minute's
    (provisioning.admission); the watchdog deletes those older than two minutes."""

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=20)
    started_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "started_at"], name="provider_start_kind_idx")]
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.kind} started {self.started_at:%H:%M:%S}"


# --- records of the stand-in outside services ---------------------------------------------


class DnsRecord(models.Model):
    tenant_id = models.UUIDField(unique=True)
    hostname = models.CharField(max_length=255)
    target = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.hostname


class BillingAccount(models.Model):
    tenant_id = models.UUIDField(unique=True)
    plan = models.CharField(max_length=20)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"billing {self.id}"


class AdminInvite(models.Model):
    tenant_id = models.UUIDField(unique=True)
    email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.email


class ResourceFinding(models.Model):
    """What reconciliation found wrong between the ledger and the providers, kept so that each
    finding is recorded (one audit event) once, and marked resolved when it goes away.

    ``leaked``: the provider holds it, no held allocation names it. ``missing``: a held
    allocation names it, the provider does not have it. ``tenant_id`` is what the provider
    tells (None when it cannot); not a foreign key, as a leak may outlive its tenant's row.
    """

    class Problem(models.TextChoices):
        LEAKED = "leaked", "Leaked"
        MISSING = "missing", "Missing"

    id = models.BigAutoField(primary_key=True)
    problem = models.CharField(max_length=20, choices=Problem.choices)
    kind = models.CharField(max_length=20)
    external_id = models.CharField(max_length=500)
    tenant_id = models.UUIDField(null=True, blank=True, db_index=True)
    allocation = models.ForeignKey(
        Allocation, on_delete=models.SET_NULL, null=True, blank=True, related_name="findings"
    )
    first_seen_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["first_seen_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["problem", "kind", "external_id"],
                condition=Q(resolved_at__isnull=True),
                name="resource_finding_one_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.problem} {self.kind} {self.external_id}"
