"""``manage.py schedule``: the scheduled operations from a shell (list, cancel).

A door like the console's schedules page and ``GET /schedules`` / ``DELETE /schedules/{id}``:
parse, call ``tenants.schedules``, print. Schedule an operation with ``--at`` on ``manage.py
tenant OP`` or ``tenant bulk OP --yes``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants import schedules
from tenants.actors import Actor
from tenants.errors import OperationError
from tenants.formats import stamp_text
from tenants.management.commands.tenant import columns, default_actor, dumps, one_line


class Command(BaseCommand):
    help = "List or cancel scheduled operations."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True)
        listing = sub.add_parser("list", help="scheduled operations, soonest first")
        listing.add_argument(
            "--status", help="scheduled, done, refused or cancelled (default: every one)"
        )
        listing.add_argument("--operation", help="only this operation")
        listing.add_argument("--tenant", help="only schedules of this tenant (slug or id)")
        listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
        listing.add_argument("--json", action="store_true", help="print a JSON array")
        cancel = sub.add_parser("cancel", help="cancel a schedule that has not run")
        cancel.add_argument("schedule", help="the schedule's id")
        cancel.add_argument("--reason", default=None, help="why (at most 500 characters)")
        cancel.add_argument(
            "--actor",
            default=None,
            help="who cancels, recorded as user:<name> in the audit feed (default: the OS user)",
        )
        cancel.add_argument("--json", action="store_true", help="print the schedule as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["subcommand"] == "list":
                self.list(options)
            else:
                self.cancel(options)
        except OperationError as exc:
            raise CommandError(one_line(exc)) from None

    def list(self, options: dict[str, Any]) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")
        filters = schedules.ScheduleFilters.parse(
            status=options["status"], operation=options["operation"], tenant=options["tenant"]
        )
        rows = list(schedules.schedule_list(filters)[: options["limit"]])
        if options["json"]:
            self.stdout.write(dumps([schedules.schedule_json(s) for s in rows]))
            return
        if not rows:
            self.stdout.write("No scheduled operations.")
            return
        table = [("ID", "AT (UTC)", "OPERATION", "ON", "STATUS", "BY", "OUTCOME")]
        for s in rows:
            table.append(
                (
                    str(s.id),
                    stamp_text(s.at),
                    schedules.operation_text(s),
                    schedules.tenants_of(s),
                    s.status,
                    s.actor,
                    str(s.outcome.get("message", "")) if s.outcome else "",
                )
            )
        for line in columns(table):
            self.stdout.write(line)

    def cancel(self, options: dict[str, Any]) -> None:
        name = (options.get("actor") or default_actor()).strip()
        if not name or len(name) > 150 or not name.isprintable():
            raise CommandError("--actor is 1 to 150 printable characters.")
        s = schedules.cancel_schedule(
            options["schedule"], actor=Actor.shell(name), reason=options["reason"]
        )
        if options["json"]:
            self.stdout.write(dumps(schedules.schedule_json(s)))
        else:
            self.stdout.write(
                f"Cancelled the scheduled {schedules.operation_text(s)} of "
                f"{schedules.tenants_of(s)} at {stamp_text(s.at)}."
            )
