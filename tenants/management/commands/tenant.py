"""``manage.py tenant``: the operator operations from a shell.

A door like the console and the API: parse the arguments, call one service function, print.
The person at the shell is trusted like the database itself (``Actor.shell``): no permission
check, but the audit feed records who acted as ``user:<name>`` (``--actor``, by default the OS
user). A refused operation exits non-zero with the service's one-line reason.
"""

from __future__ import annotations

import getpass
import json
import os
import time
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from provisioning.kinds import kind_of
from provisioning.models import RunStatus
from tenants import approvals, bulk, operations, schedules
from tenants.actors import Actor
from tenants.bulk import BULK_DEFAULT_LIMIT, BULK_MAX_LIMIT
from tenants.errors import OperationError
from tenants.formats import stamp_text
from tenants.models import NEEDS_ATTENTION, Condition, Plan, Tenant, TenantState
from tenants.operations import CREATE, OPERATIONS, create_tenant
from tenants.selectors import (
    TenantDetail,
    TenantFilters,
    find_tenant,
    tenant_detail,
    tenant_list,
)
from tenants.serializers import detail_dict, tenant_dict


def default_actor() -> str:
    # getpass reads LOGNAME/USER and then the password database; a container may have neither.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "shell"


def dumps(value: Any, *, indent: int | None = 2) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, indent=indent)


def squeeze(text: str) -> str:
    """Text on one line: a recorded error may span several (a database's error does)."""
    return " ".join(text.split())


def one_line(exc: OperationError) -> str:
    """The refusal on one line: the message, then each bad field's messages."""
    parts = [exc.message.rstrip(".")]
    if isinstance(exc.details, dict):
        for field, messages in exc.details.items():
            if isinstance(messages, list | tuple):
                text = " ".join(str(m) for m in messages)
                if text in exc.message:  # a filter's message already says it
                    continue
                parts.append(f"{field}: {text}".rstrip("."))
    return squeeze("; ".join(parts) + ".")


class Command(BaseCommand):
    help = "Create, list, show and operate on tenants (through the same services as the portal)."

    # How often --wait reads the tenant's situation; tests make it shorter.
    poll_interval = 0.5

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        create = sub.add_parser("create", help="create a tenant and (by default) provision it")
        # Not required=True for argparse: the service names every missing or bad field in one
        # line, where argparse would stop at the first with a usage screen.
        create.add_argument("--slug", help="3-63 chars: a-z, 0-9 and single hyphens (required)")
        create.add_argument("--name", help="display name, 1-200 chars (required)")
        create.add_argument("--plan", help="starter, growth or enterprise (required)")
        create.add_argument("--admin-email", dest="admin_email", help="(required)")
        create.add_argument(
            "--no-start",
            dest="start",
            action="store_false",
            help="create the tenant pending, without starting its provisioning",
        )
        self._add_faults(create)
        self._add_actor(create)
        self._add_wait(create)
        create.add_argument("--json", action="store_true", help="print the tenant as JSON")

        listing = sub.add_parser("list", help="list tenants, newest first")
        listing.add_argument(
            "--state",
            action="append",
            default=[],
            help="only tenants in this state (repeat or comma-separate for several)",
        )
        listing.add_argument("--plan", help="only tenants on this plan")
        listing.add_argument(
            "--condition",
            action="append",
            default=[],
            help="only tenants in this condition (repeat or comma-separate for several): "
            + ", ".join(Condition.values),
        )
        listing.add_argument(
            "--needs-attention",
            dest="needs_attention",
            action="store_true",
            help="only tenants an operator must act on (" + ", ".join(NEEDS_ATTENTION) + ")",
        )
        listing.add_argument("--q", default=None, help="search slug, name and admin e-mail")
        listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
        listing.add_argument("--json", action="store_true", help="print a JSON array")

        show = sub.add_parser("show", help="show a tenant, its run, allocations and next moves")
        show.add_argument("tenant", help="slug or id")
        show.add_argument("--json", action="store_true", help="print a JSON object")

        for operation in OPERATIONS.values():
            # change_plan is spelled change-plan on the command line (change_plan works too).
            spelled = operation.name.replace("_", "-")
            aliases = [operation.name] if spelled != operation.name else []
            op = sub.add_parser(spelled, aliases=aliases, help=operation.summary)
            op.add_argument("tenant", help="slug or id")
            if operation.takes_faults:
                self._add_faults(op)
            if "plan" in operation.options:
                op.add_argument(
                    "--plan",
                    default=None,
                    help=f"the plan to move to ({', '.join(Plan.values)}); required",
                )
            self._add_actor(op)
            if operation.settles:
                self._add_wait(op)
            self._add_reason(op)
            self._add_at(op)
            op.add_argument(
                "--dry-run",
                action="store_true",
                help="only show what it would do (released, kept, resulting state); change nothing",
            )
            op.add_argument("--json", action="store_true", help="print the tenant as JSON")

        # The older per-tenant form of `manage.py approval approve|withdraw ID`: the request of
        # OPERATION (decommission by default, four eyes' name) waiting for this tenant.
        for decision in approvals.DECISIONS.values():
            dec = sub.add_parser(
                decision.name, help=f"{decision.summary} (the one waiting for this tenant)"
            )
            dec.add_argument("tenant", help="slug or id")
            dec.add_argument(
                "--operation",
                default="decommission",
                choices=list(OPERATIONS),
                help="which waiting operation (decommission)",
            )
            self._add_actor(dec)
            self._add_reason(dec)

        many = sub.add_parser(
            "bulk", help="one operation on every tenant matching filters (previews without --yes)"
        )
        many.add_argument("operation", choices=list(OPERATIONS), metavar="OP")
        many.add_argument("--state", help="only tenants in this state")
        many.add_argument("--condition", help="only tenants in this condition (comma list)")
        many.add_argument(
            "--needs-attention",
            dest="needs_attention",
            action="store_true",
            help="only tenants that need an operator",
        )
        many.add_argument("--plan", help="only tenants on this plan")
        many.add_argument(
            "--to-plan",
            dest="to_plan",
            default=None,
            help="change_plan: the plan to move every chosen tenant to",
        )
        many.add_argument("--q", help="only tenants whose slug, name or e-mail contains this")
        many.add_argument(
            "--limit",
            type=int,
            default=BULK_DEFAULT_LIMIT,
            help=f"at most this many tenants ({BULK_DEFAULT_LIMIT}, at most {BULK_MAX_LIMIT})",
        )
        many.add_argument("--dry-run", action="store_true", help="only preview (the default)")
        many.add_argument("--yes", action="store_true", help="really do it (without: preview)")
        self._add_reason(many)
        self._add_at(many)
        self._add_actor(many)
        many.add_argument("--json", action="store_true", help="print the answer as JSON")

    @staticmethod
    def _add_actor(parser: ArgumentParser) -> None:
        parser.add_argument(
            "--actor",
            default=None,
            help="who acts, recorded as user:<name> in the audit feed (default: the OS user)",
        )

    @staticmethod
    def _add_reason(parser: ArgumentParser) -> None:
        parser.add_argument(
            "--reason",
            default=None,
            help="why (at most 500 characters), recorded as data.reason in the audit feed",
        )

    @staticmethod
    def _add_at(parser: ArgumentParser) -> None:
        parser.add_argument(
            "--at",
            default=None,
            help="run it later, at this ISO 8601 time with an offset (2026-05-17T09:30:00+02:00); "
            "it runs then as you, with the tenant's state at that moment",
        )

    @staticmethod
    def _add_wait(parser: ArgumentParser) -> None:
        parser.add_argument(
            "--wait",
            action="store_true",
            help="show progress until the work settles; non-zero unless it ends as expected",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=600.0,
            help="with --wait: give up after this many seconds (600)",
        )

    @staticmethod
    def _add_faults(parser: ArgumentParser) -> None:
        parser.add_argument(
            "--faults",
            default=None,
            help="fault injection (development): step=fault pairs (create_database=fail, "
            'configure_dns=fail_once) or a JSON object (\'{"create_database": "fail"}\')',
        )

    # --- dispatch -------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"].replace("-", "_")
        try:
            if subcommand == "create":
                self.create(options)
            elif subcommand == "list":
                self.list(options)
            elif subcommand == "show":
                self.show(options)
            elif subcommand == "bulk":
                self.bulk(options)
            elif subcommand in approvals.DECISIONS:
                self.decide(subcommand, options)
            else:
                self.operate(subcommand, options)
        except OperationError as exc:
            # CommandError prints one line, without a traceback, and exits 1.
            raise CommandError(one_line(exc)) from None

    def create(self, options: dict[str, Any]) -> None:
        if options["wait"] and not options["start"]:
            raise CommandError("--wait follows a provisioning; it cannot go with --no-start.")
        tenant = create_tenant(
            slug=options["slug"],
            name=options["name"],
            plan=options["plan"],
            admin_email=options["admin_email"],
            start=options["start"],
            faults=self._faults(options),
            actor=self._actor(options),
        )
        if not options["json"]:
            self.stdout.write(CREATE.done_message(tenant))
        self._finish(TenantState.ACTIVE, tenant, options)

    def operate(self, action: str, options: dict[str, Any]) -> None:
        op = OPERATIONS[action]
        tenant = find_tenant(options["tenant"])
        kwargs: dict[str, Any] = {
            "tenant_id": tenant.id,
            "actor": self._actor(options),
            "reason": options["reason"],
        }
        if op.takes_faults:
            kwargs["faults"] = self._faults(options)
        kwargs["options"] = {name: options.get(name) for name in op.options}
        if options["at"] is not None and not options["dry_run"]:
            if options.get("wait"):
                raise CommandError("--wait cannot go with --at: nothing happens before then.")
            scheduled = schedules.schedule_operation(action, at=options["at"], **kwargs)
            self._scheduled(scheduled, options)
            return
        if options["at"] is not None:
            schedules.parse_at(options["at"])
        if options["dry_run"]:
            preview = operations.preview(action, **kwargs)
            if options["json"]:
                self.stdout.write(dumps(preview.as_dict()))
                return
            self.stdout.write(f"Dry run: {op.label} {tenant.slug}: {preview.summary}")
            for a in preview.release:
                self.stdout.write(f"  release  {a.kind:<9} {a.external_id}")
            for a in preview.keep:
                self.stdout.write(f"  keep     {a.kind:<9} {a.external_id}")
            for c in preview.changes:
                self.stdout.write(
                    f"  change   {c['what']}: {c.get('from_text', c['from'])} -> "
                    f"{c.get('to_text', c['to'])}"
                )
            self.stdout.write(f"  events   {', '.join(preview.events)}")
            self.stdout.write("Nothing was changed.")
            return
        tenant = operations.perform(action, **kwargs)
        if not options["json"]:
            self.stdout.write(operations.success_message(op, tenant))
        if getattr(tenant, "approval", None) is not None or not op.settles:
            # Nothing moves until a second person approves: there is nothing to wait for.
            options["wait"] = False
        # Cancelling a plan change ends active (reverted); a change ends on the plan asked for.
        expected = TenantState.ACTIVE if tenant.state == TenantState.UPDATING else op.end_state
        self._finish(expected, tenant, options, plan=kwargs["options"].get("plan"))

    def decide(self, decision: str, options: dict[str, Any]) -> None:
        tenant = find_tenant(options["tenant"])
        waiting = approvals.waiting_for(tenant.id, options["operation"])
        done = approvals.decide(
            decision, waiting.pk, actor=self._actor(options), reason=options["reason"]
        )
        said = approvals.decided_message(done)
        if done.status in ("refused", "expired"):
            raise CommandError(said)
        self.stdout.write(said)

    def bulk(self, options: dict[str, Any]) -> None:
        if options["yes"] and options["dry_run"]:
            raise CommandError("--yes and --dry-run contradict each other; give one.")
        filters = {
            key: options[key]
            for key in ("state", "condition", "plan", "q")
            if options.get(key) not in (None, "")
        }
        if options["needs_attention"]:
            filters["needs_attention"] = True
        op = OPERATIONS[options["operation"]]
        if options.get("to_plan") and "plan" not in op.options:
            raise CommandError(f"--to-plan goes with change_plan, not {op.name}.")
        own = {"plan": options.get("to_plan")} if "plan" in op.options else None
        if options["at"] is not None and options["yes"]:
            scheduled = schedules.schedule_bulk(
                options["operation"],
                actor=self._actor(options),
                at=options["at"],
                filters=filters,
                reason=options["reason"],
                limit=options["limit"],
                options=own,
            )
            self._scheduled(scheduled, options)
            return
        if options["at"] is not None:
            schedules.parse_at(options["at"])
        result = bulk.bulk(
            options["operation"],
            actor=self._actor(options),
            filters=filters,
            dry_run=not options["yes"],
            reason=options["reason"],
            limit=options["limit"],
            options=own,
        )
        if options["json"]:
            self.stdout.write(dumps(result.as_dict()))
        elif result.approval is not None:
            op = OPERATIONS[options["operation"]]
            self.stdout.write(
                operations.waiting_message(op, result.approval.target)
                + f" Request {result.approval.id}."
            )
        else:
            label = OPERATIONS[options["operation"]].label
            for r in result.results:
                self.stdout.write(f"{r.slug:<24} {r.outcome:<13} {r.message}")
            shown = len(result.results)
            more = f" (first {shown} handled; raise --limit)" if result.matched > shown else ""
            if result.dry_run:
                self.stdout.write(
                    f"Dry run: {label} would be accepted for {result.count('would_accept')} of "
                    f"{result.matched} matched{more}. Nothing was changed; add --yes to do it."
                )
            else:
                self.stdout.write(
                    f"{label}: accepted for {result.count('accepted')}, refused for "
                    f"{result.count('refused')} of {result.matched} matched{more}."
                )
        if not result.dry_run and result.count("refused"):
            raise CommandError(f"{result.count('refused')} refused.", returncode=2)

    def _scheduled(self, scheduled: Any, options: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(dumps({"schedule": schedules.schedule_json(scheduled)}))
            return
        self.stdout.write(
            f"Scheduled {schedules.operation_text(scheduled)} of "
            f"{schedules.tenants_of(scheduled)} at {stamp_text(scheduled.at)} "
            f"(schedule {scheduled.id}); `manage.py schedule cancel {scheduled.id}` cancels it."
        )

    def _finish(
        self, expected: str, tenant: Tenant, options: dict[str, Any], *, plan: str | None = None
    ) -> None:
        if options["wait"]:
            detail = self.wait(
                tenant,
                expected=expected,
                timeout=options["timeout"],
                quiet=options["json"],
                plan=plan,
            )
            tenant = detail.tenant
        if options["json"]:
            self.stdout.write(dumps(tenant_dict(tenant)))

    def list(self, options: dict[str, Any]) -> None:
        if not 1 <= options["limit"] <= 10_000:
            raise CommandError("--limit must be between 1 and 10000.")
        # The same parser and selector as every other list (states too: no filter of its own).
        filters = TenantFilters.parse(
            state=options["state"],
            plan=options["plan"],
            condition=options["condition"],
            needs_attention=options["needs_attention"],
            q=options["q"],
        )
        tenants = tenant_list(filters).order_by("-created_at", "-id")
        rows = list(tenants[: options["limit"]])
        if options["json"]:
            self.stdout.write(dumps([tenant_dict(t) for t in rows]))
            return
        if not rows:
            self.stdout.write("No tenants.")
            return
        header = ("SLUG", "STATE", "CONDITION", "PLAN", "CREATED", "ID")
        lines = columns(
            [header]
            + [
                (
                    t.slug,
                    t.state,
                    t.condition + ("!" if t.needs_attention else ""),
                    t.plan,
                    stamp_text(t.created_at),
                    str(t.id),
                )
                for t in rows
            ]
        )
        for line in lines:
            self.stdout.write(line)

    def show(self, options: dict[str, Any]) -> None:
        detail = tenant_detail(find_tenant(options["tenant"]).id)
        if options["json"]:
            self.stdout.write(dumps(detail_dict(detail)))
            return
        t = detail.tenant
        write = self.stdout.write
        state = t.state + (" (decommissioning)" if detail.decommissioning else "")
        write(f"{t.slug}  {t.name}")
        write(f"  id           {t.id}")
        write(f"  state        {state}")
        attention = " (needs attention)" if t.needs_attention else ""
        write(f"  condition    {t.condition}{attention}")
        write(f"  plan         {t.plan}")
        write(f"  admin e-mail {t.admin_email}")
        write(f"  created      {stamp_text(t.created_at)}")
        if t.activated_at:
            write(f"  activated    {stamp_text(t.activated_at)}")
        if t.last_error:
            where = f" (in {t.failed_activity})" if t.failed_activity else ""
            write(f"  last error   {t.last_error}{where}")
        run = detail.run
        if run is not None:
            flags = " rolling back" if run.compensating else ""
            flags += " STALLED" if run.stalled_at else ""
            what = run.get_kind_display().lower()
            if run.params.get("to"):
                what += f" {run.params.get('from')} -> {run.params.get('to')}"
            write(f"  run          {what}, attempt {run.attempt}, {run.status}{flags} ({run.id})")
            steps = [
                (
                    step.name,
                    step.status,
                    f"{step.duration_ms} ms" if step.duration_ms is not None else "",
                    "reused" if step.reused else "",
                    step.error,
                )
                for step in detail.step_views
            ]
            for line in columns(steps, indent=4):
                write(line)
        if detail.allocations:
            write("  held")
            for line in columns([(a.kind, a.external_id) for a in detail.allocations], indent=4):
                write(line)
        for waiting in detail.approvals:
            req = waiting.request
            approvers = ", ".join(waiting.approvers) or "no one else yet"
            write(
                f"  waiting      {req.operation} asked by {req.requested_by}, expires "
                f"{stamp_text(req.expires_at)}; may approve: {approvers} "
                f"(manage.py approval approve {req.id})"
            )
        write("  actions")
        offered = [
            (a.name, "available" if a.available and a.permitted else f"not now: {a.reason}")
            for a in detail.actions
        ]
        for line in columns(offered, indent=4):
            write(line)
        rec = detail.recommendation
        write(f"  recommended  {rec.action}: {rec.reason}")

    # --- waiting ----------------------------------------------------------------------------

    def wait(
        self,
        tenant: Tenant,
        *,
        expected: str,
        timeout: float,
        quiet: bool = False,
        plan: str | None = None,
    ) -> TenantDetail:
        """Show a live progress line until the tenant settles; refuse the wrong ending.

        Progress goes to stderr, so ``--wait --json`` still prints only JSON on stdout. On a
        terminal the line is rewritten in place; otherwise a line is written only when the
        step changes, so a log stays readable.
        """
        started = time.monotonic()
        live = self.stderr.isatty()
        last_line = ""
        try:
            while True:
                detail = tenant_detail(tenant.id)
                elapsed = time.monotonic() - started
                line = progress_line(detail, elapsed)
                if live:
                    self.stderr.write(f"\r\033[K{line}", ending="")
                    self.stderr.flush()
                elif line.split(" · ")[:-1] != last_line.split(" · ")[:-1]:
                    self.stderr.write(line)
                last_line = line
                if detail.settled:
                    break
                if elapsed > timeout:
                    if live:
                        self.stderr.write("")
                    raise CommandError(
                        squeeze(
                            f"Gave up waiting after {timeout:g}s: {tenant.slug} is still "
                            f"{detail.tenant.state} ({detail.recommendation.reason})"
                        )
                    )
                time.sleep(self.poll_interval)
        except KeyboardInterrupt:
            if live:
                self.stderr.write("")
            raise CommandError(
                f"Stopped waiting; the work goes on. See: manage.py tenant show {tenant.slug}",
                returncode=130,
            ) from None
        if live:
            self.stderr.write("")
        t = detail.tenant
        took = time.monotonic() - started
        if plan and t.state == expected and t.plan != plan:
            # A plan change that failed (or was cancelled) ends active too, on the old plan.
            why = t.last_error or "the change was cancelled"
            took = time.monotonic() - started
            raise CommandError(
                squeeze(
                    f"{t.slug} ended {t.state} on its old plan {t.plan}, not {plan}, after "
                    f"{took:.1f}s: {why}"
                )
            )
        if t.state != expected:
            reason = t.last_error or detail.recommendation.reason
            where = f" in {t.failed_activity}" if t.failed_activity else ""
            raise CommandError(
                squeeze(
                    f"{t.slug} ended {t.state}, not {expected}, after {took:.1f}s{where}: {reason}"
                )
            )
        if not quiet:
            self.stdout.write(f"{t.slug} is {t.state} ({took:.1f}s).")
        return detail

    # --- helpers ----------------------------------------------------------------------------

    def _actor(self, options: dict[str, Any]) -> Actor:
        return shell_actor(options)

    def _faults(self, options: dict[str, Any]) -> Any:
        # As given: the service reads the one faults syntax every door takes.
        return options.get("faults")


def shell_actor(options: dict[str, Any]) -> Actor:
    """Who acts at the shell: ``--actor``, by default the OS user."""
    name = (options.get("actor") or default_actor()).strip()
    if not name:
        raise CommandError("--actor must name someone.")
    # Recorded as user:<name> in the audit feed (at most 200 characters, no control
    # characters): a longer or unprintable name is refused, not a database error.
    if len(name) > 150 or not name.isprintable():
        raise CommandError("--actor is at most 150 printable characters.")
    return Actor.shell(name)


def columns(rows: list[tuple[str, ...]], *, indent: int = 0, gap: int = 2) -> list[str]:
    """Rows as lines whose columns line up: each column as wide as its widest value (the
    last one unpadded, so no line ends in spaces)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append((" " * indent + (" " * gap).join(cells)).rstrip())
    return lines


def progress_line(detail: TenantDetail, elapsed: float) -> str:
    """``acme · provisioning · step 3/8 create_database (try 1) · 4.2s``."""
    t = detail.tenant
    parts = [t.slug, t.state]
    run = detail.run
    if detail.decommissioning:
        parts.append("releasing resources")
    elif run is not None and run.is_live:
        if run.status == RunStatus.CANCELLING or run.compensating:
            parts.append(f"rolling back ({run.status})")
        elif run.current_step:
            step = next((s for s in detail.steps if s.name == run.current_step), None)
            steps = kind_of(run).steps
            position = steps.index(run.current_step) + 1 if run.current_step in steps else 0
            tries = f" (try {step.tries})" if step is not None and step.tries > 1 else ""
            parts.append(f"step {position}/{len(steps)} {run.current_step}{tries}")
        if run.stalled_at:
            parts.append("stalled")
    parts.append(f"{elapsed:.1f}s")
    return " · ".join(parts)
