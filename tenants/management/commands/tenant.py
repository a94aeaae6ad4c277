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

from provisioning.models import STEPS
from tenants.errors import OperationError
from tenants.models import Plan, Tenant, TenantState
from tenants.selectors import TenantDetail, find_tenant, tenant_detail
from tenants.services import OPERATIONS, Actor, create_tenant

# Where each operation should leave the tenant once its work has settled; ``--wait`` exits
# non-zero when it ends anywhere else.
EXPECTED_STATE: dict[str, str] = {
    "create": TenantState.ACTIVE,
    "retry": TenantState.ACTIVE,
    "cancel": TenantState.PENDING,
    "reset": TenantState.PENDING,
    "suspend": TenantState.SUSPENDED,
    "resume": TenantState.ACTIVE,
    "decommission": TenantState.DECOMMISSIONED,
}

OPERATION_HELP: dict[str, str] = {
    "cancel": "stop an in-flight provisioning and roll back what it allocated",
    "reset": "clear a wedged provisioning (recorded error) back to pending; keeps allocations",
    "retry": "start a new provisioning attempt (failed, or pending without error)",
    "suspend": "suspend an active tenant",
    "resume": "resume a suspended tenant",
    "decommission": "release everything the tenant holds and free its slug",
}


def default_actor() -> str:
    # getpass reads LOGNAME/USER and then the password database; a container may have neither.
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "shell"


def tenant_dict(tenant: Tenant) -> dict[str, Any]:
    """The tenant's fields, as the contract names them."""
    return {
        "id": tenant.id,
        "slug": tenant.slug,
        "name": tenant.name,
        "plan": tenant.plan,
        "admin_email": tenant.admin_email,
        "state": tenant.state,
        "workflow_id": tenant.workflow_id,
        "last_error": tenant.last_error,
        "failed_activity": tenant.failed_activity,
        "decommission_requested_at": tenant.decommission_requested_at,
        "created_at": tenant.created_at,
        "updated_at": tenant.updated_at,
        "activated_at": tenant.activated_at,
        "decommissioned_at": tenant.decommissioned_at,
    }


def detail_dict(detail: TenantDetail) -> dict[str, Any]:
    """The tenant with its run, steps, held allocations and what may be done next."""
    run = detail.run
    return {
        **tenant_dict(detail.tenant),
        "run": None
        if run is None
        else {
            "id": run.id,
            "attempt": run.attempt,
            "status": run.status,
            "compensating": run.compensating,
            "current_step": run.current_step,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "heartbeat_at": run.heartbeat_at,
            "stalled_at": run.stalled_at,
            "error": run.error,
            "failed_step": run.failed_step,
            "steps": [
                {
                    "name": step.name,
                    "status": step.status,
                    "tries": step.tries,
                    "reused": step.reused,
                    "started_at": step.started_at,
                    "finished_at": step.finished_at,
                    "duration_ms": step.duration_ms,
                    "error": step.error,
                }
                for step in detail.steps
            ],
        },
        "allocations": [
            {
                "kind": a.kind,
                "external_id": a.external_id,
                "allocated_at": a.allocated_at,
                "release_error": a.release_error,
            }
            for a in detail.allocations
        ],
        "available_actions": detail.available_actions,
        "recommended_action": detail.recommendation.action,
        "recommendation": detail.recommendation.reason,
        "seconds_since_heartbeat": detail.seconds_since_heartbeat,
    }


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
        listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
        listing.add_argument("--json", action="store_true", help="print a JSON array")

        show = sub.add_parser("show", help="show a tenant, its run, allocations and next moves")
        show.add_argument("tenant", help="slug or id")
        show.add_argument("--json", action="store_true", help="print a JSON object")

        for name, help_text in OPERATION_HELP.items():
            op = sub.add_parser(name, help=help_text)
            op.add_argument("tenant", help="slug or id")
            if name == "retry":
                self._add_faults(op)
            self._add_actor(op)
            self._add_wait(op)
            op.add_argument("--json", action="store_true", help="print the tenant as JSON")

    @staticmethod
    def _add_actor(parser: ArgumentParser) -> None:
        parser.add_argument(
            "--actor",
            default=None,
            help="who acts, recorded as user:<name> in the audit feed (default: the OS user)",
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
            help='fault injection (development): JSON like \'{"create_database": "fail"}\'',
        )

    # --- dispatch -------------------------------------------------------------------------

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand = options["subcommand"]
        try:
            if subcommand == "create":
                self.create(options)
            elif subcommand == "list":
                self.list(options)
            elif subcommand == "show":
                self.show(options)
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
            started = "provisioning started" if options["start"] else "pending (not started)"
            self.stdout.write(f"Created tenant {tenant.slug} ({tenant.id}): {started}.")
        self._finish("create", tenant, options)

    def operate(self, action: str, options: dict[str, Any]) -> None:
        tenant = find_tenant(options["tenant"])
        kwargs: dict[str, Any] = {"tenant_id": tenant.id, "actor": self._actor(options)}
        if action == "retry":
            kwargs["faults"] = self._faults(options)
        tenant = OPERATIONS[action](**kwargs)
        if not options["json"]:
            self.stdout.write(f"{action.capitalize()}: accepted for {tenant.slug}.")
        self._finish(action, tenant, options)

    def _finish(self, action: str, tenant: Tenant, options: dict[str, Any]) -> None:
        if options["wait"]:
            detail = self.wait(
                tenant, action=action, timeout=options["timeout"], quiet=options["json"]
            )
            tenant = detail.tenant
        if options["json"]:
            self.stdout.write(dumps(tenant_dict(tenant)))

    def list(self, options: dict[str, Any]) -> None:
        states = [s.strip() for value in options["state"] for s in value.split(",") if s.strip()]
        unknown = [s for s in states if s not in TenantState.values]
        if unknown:
            raise CommandError(
                f"Unknown state {', '.join(unknown)}; choose from {', '.join(TenantState.values)}."
            )
        if options["plan"] and options["plan"] not in Plan.values:
            raise CommandError(
                f"Unknown plan {options['plan']}; choose from {', '.join(Plan.values)}."
            )
        if not 1 <= options["limit"] <= 10_000:
            raise CommandError("--limit must be between 1 and 10000.")
        tenants = Tenant.objects.order_by("-created_at", "-id")
        if states:
            tenants = tenants.filter(state__in=states)
        if options["plan"]:
            tenants = tenants.filter(plan=options["plan"])
        rows = list(tenants[: options["limit"]])
        if options["json"]:
            self.stdout.write(dumps([tenant_dict(t) for t in rows]))
            return
        if not rows:
            self.stdout.write("No tenants.")
            return
        width = max(len("SLUG"), *(len(t.slug) for t in rows))
        self.stdout.write(f"{'SLUG':<{width}}  {'STATE':<14}  {'PLAN':<10}  {'CREATED':<20}  ID")
        for t in rows:
            created = t.created_at.strftime("%Y-%m-%d %H:%M:%SZ")
            self.stdout.write(f"{t.slug:<{width}}  {t.state:<14}  {t.plan:<10}  {created}  {t.id}")

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
        write(f"  plan         {t.plan}")
        write(f"  admin e-mail {t.admin_email}")
        write(f"  created      {t.created_at:%Y-%m-%d %H:%M:%SZ}")
        if t.activated_at:
            write(f"  activated    {t.activated_at:%Y-%m-%d %H:%M:%SZ}")
        if t.last_error:
            where = f" (in {t.failed_activity})" if t.failed_activity else ""
            write(f"  last error   {t.last_error}{where}")
        run = detail.run
        if run is not None:
            flags = " rolling back" if run.compensating else ""
            flags += " STALLED" if run.stalled_at else ""
            write(f"  run          attempt {run.attempt}, {run.status}{flags} ({run.id})")
            for step in detail.steps:
                took = f" {step.duration_ms} ms" if step.duration_ms is not None else ""
                extra = " reused" if step.reused else ""
                err = f"  {step.error}" if step.error else ""
                write(f"    {step.name:<18} {step.status:<10}{took}{extra}{err}")
        if detail.allocations:
            write("  held")
            for a in detail.allocations:
                write(f"    {a.kind:<9} {a.external_id}")
        actions = ", ".join(detail.available_actions) or "none"
        write(f"  actions      {actions}")
        rec = detail.recommendation
        write(f"  recommended  {rec.action}: {rec.reason}")

    # --- waiting ----------------------------------------------------------------------------

    def wait(
        self, tenant: Tenant, *, action: str, timeout: float, quiet: bool = False
    ) -> TenantDetail:
        """Show a live progress line until the tenant settles; refuse the wrong ending.

        Progress goes to stderr, so ``--wait --json`` still prints only JSON on stdout. On a
        terminal the line is rewritten in place; otherwise a line is written only when the
        step changes, so a log stays readable.
        """
        expected = EXPECTED_STATE[action]
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
        name = (options.get("actor") or default_actor()).strip()
        if not name:
            raise CommandError("--actor must name someone.")
        # Recorded as user:<name> in the audit feed (at most 200 characters, no control
        # characters): a longer or unprintable name is refused, not a database error.
        if len(name) > 150 or not name.isprintable():
            raise CommandError("--actor is at most 150 printable characters.")
        return Actor.shell(name)

    def _faults(self, options: dict[str, Any]) -> Any:
        raw = options.get("faults")
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--faults is not valid JSON: {exc}.") from None


def progress_line(detail: TenantDetail, elapsed: float) -> str:
    """``acme · provisioning · step 3/8 create_database (try 1) · 4.2s``."""
    t = detail.tenant
    parts = [t.slug, t.state]
    run = detail.run
    if detail.decommissioning:
        parts.append("releasing resources")
    elif run is not None and run.is_live:
        if run.status == "cancelling" or run.compensating:
            parts.append(f"rolling back ({run.status})")
        elif run.current_step:
            step = next((s for s in detail.steps if s.name == run.current_step), None)
            position = STEPS.index(run.current_step) + 1 if run.current_step in STEPS else 0
            tries = f" (try {step.tries})" if step is not None and step.tries > 1 else ""
            parts.append(f"step {position}/{len(STEPS)} {run.current_step}{tries}")
        if run.stalled_at:
            parts.append("stalled")
    parts.append(f"{elapsed:.1f}s")
    return " · ".join(parts)
