"""``manage.py approval list|approve|withdraw``: the approval policy from a shell.

A door like the others: parse, call ``tenants.approvals``, print. The person at the shell is
trusted (``Actor.shell``) but is still a person: whoever asked for an operation cannot approve
it, whatever door they use. A refused decision exits non-zero with its one-line reason.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import approvals
from tenants.errors import OperationError
from tenants.formats import stamp_text
from tenants.models import ApprovalStatus

from .tenant import columns, dumps, one_line, shell_actor


class Command(BaseCommand):
    help = "List operations waiting for a second person's approval; approve or withdraw one."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        listing = sub.add_parser("list", help="requests, waiting ones first")
        listing.add_argument("--status", choices=list(ApprovalStatus.values))
        listing.add_argument("--operation", help="an operation's name, or bulk")
        listing.add_argument("--tenant", help="slug or id")
        listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
        listing.add_argument("--json", action="store_true", help="print JSON")
        for decision in approvals.DECISIONS.values():
            dec = sub.add_parser(decision.name, help=decision.summary)
            dec.add_argument("id", help="the request's id (approval list)")
            dec.add_argument(
                "--actor",
                default=None,
                help="who decides, recorded as user:<name> (default: the OS user)",
            )
            dec.add_argument("--reason", default=None, help="why (at most 500 characters)")
            dec.add_argument("--json", action="store_true", help="print the request as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["subcommand"] == "list":
                self.list(options)
            else:
                self.decide(options["subcommand"], options)
        except OperationError as exc:
            raise CommandError(one_line(exc)) from None

    def list(self, options: dict[str, Any]) -> None:
        if not 1 <= options["limit"] <= 1000:
            raise CommandError("--limit must be between 1 and 1000.")
        rows = list(
            approvals.approval_list(
                status=options["status"], operation=options["operation"], tenant=options["tenant"]
            )[: options["limit"]]
        )
        if options["json"]:
            self.stdout.write(dumps([approvals.as_dict(r) for r in rows]))
            return
        if not rows:
            self.stdout.write("No approval request.")
            return
        lines = [("ID", "OPERATION", "OF", "ASKED BY", "EXPIRES", "STATUS", "OUTCOME")]
        lines += [
            (
                str(r.id),
                r.operation,
                r.target,
                r.requested_by,
                stamp_text(r.expires_at),
                r.status,
                r.outcome,
            )
            for r in rows
        ]
        for line in columns(lines):
            self.stdout.write(line)

    def decide(self, decision: str, options: dict[str, Any]) -> None:
        actor = shell_actor(options)
        done = approvals.decide(decision, options["id"], actor=actor, reason=options["reason"])
        if options["json"]:
            self.stdout.write(dumps(approvals.as_dict(done)))
        said = approvals.decided_message(done)
        if done.status in (ApprovalStatus.REFUSED, ApprovalStatus.EXPIRED):
            raise CommandError(said)
        if not options["json"]:
            self.stdout.write(said)
