"""``manage.py audit tail|verify``: read the audit feed and check its hash chains from a shell.

``tail`` prints the newest events oldest first (``--follow`` keeps printing new ones until
Ctrl-C); ``verify`` recomputes every tenant's chain and exits non-zero with one line per
problem. This door only reads: the feed is append-only.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q, QuerySet
from django.utils import timezone

from audit.checkpoints import CheckpointFileError, parse, verify_checkpoints
from audit.keys import current_key
from audit.models import GLOBAL_CHAIN, Event, EventChain
from audit.selectors import AUDIT_FILTER_KEYS, AuditFilters, audit_feed, tenant_directory
from audit.services import unkeyed_events, verify_chains
from controlplane.errors import OperationError
from controlplane.formats import StampJSONEncoder, stamp_text

# How far back --follow looks again on every poll. Event ids come from a sequence taken at
# insert time, so a transaction that inserted a lower id can commit after a higher id was
# already printed; looking only for "id > last printed" would skip it forever. Transactions
# here are short (provider calls happen outside them), so a minute is ample.
FOLLOW_LOOKBACK = timedelta(seconds=60)


class Command(BaseCommand):
    help = "Read the audit feed (tail) or check its hash chains (verify)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

        tail = sub.add_parser("tail", help="print the newest events, oldest first")
        tail.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
        tail.add_argument("--tenant", help="only this tenant's events (slug or id)")
        tail.add_argument(
            "--type", help="a whole type or a dotted prefix, like tenant.provisioning"
        )
        tail.add_argument("--actor", help="user:NAME, token:NAME, system, or a bare name")
        tail.add_argument("--since", help="ISO 8601 (UTC when no zone): events at or after")
        tail.add_argument(
            "--hide-steps", action="store_true", help="hide step and resource chatter"
        )
        tail.add_argument("--limit", "-n", type=int, default=20, help="how many to show (20)")
        tail.add_argument("--json", action="store_true", help="one JSON object per line")
        tail.add_argument(
            "--interval", type=float, default=1.0, help="with --follow: seconds between polls"
        )

        verify = sub.add_parser("verify", help="recompute the hash chains; non-zero if broken")
        verify.add_argument("--tenant", help="only this tenant's chain (slug or id)")
        verify.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="also check against the checkpoints in FILE (log lines as written; repeatable)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["subcommand"] == "tail":
            self.tail(options)
        else:
            self.verify(options)

    # --- tail -----------------------------------------------------------------------------

    def tail(self, options: dict[str, Any]) -> None:
        if not 0 <= options["limit"] <= 10_000:
            raise CommandError("--limit must be between 0 and 10000.")
        if options["interval"] <= 0:
            raise CommandError("--interval must be more than 0 seconds.")
        events = self._filtered(options)
        window = list(events.order_by("-id")[: options["limit"]])
        window.reverse()
        self._print(window, json_lines=options["json"])
        if not options["follow"]:
            return
        # Where to start: after what was printed, or after the newest event if nothing was.
        if window:
            last_id = window[-1].id
        else:
            last_id = events.order_by("-id").values_list("id", flat=True).first() or 0
        # Everything already committed counts as seen (printed, or older than the window), so
        # the look-back below prints only what commits from now on.
        since = timezone.now() - FOLLOW_LOOKBACK
        seen: dict[int, Any] = dict(
            events.filter(id__lte=last_id, occurred_at__gte=since).values_list("id", "occurred_at")
        )
        try:
            while True:
                time.sleep(options["interval"])
                since = timezone.now() - FOLLOW_LOOKBACK
                recent = events.filter(Q(id__gt=last_id) | Q(occurred_at__gte=since))
                fresh = [e for e in recent.order_by("id") if e.id not in seen]
                self._print(fresh, json_lines=options["json"])
                for e in fresh:
                    seen[e.id] = e.occurred_at
                    last_id = max(last_id, e.id)
                # Forget what has left the look-back window, so memory stays bounded.
                seen = {i: at for i, at in seen.items() if at >= since}
        except KeyboardInterrupt:
            # Ctrl-C is how --follow ends: no traceback, exit 0.
            self.stdout.write("")
            return

    def _filtered(self, options: dict[str, Any]) -> QuerySet[Event]:
        # The same parser and selector as the API's /audit and the console's feed.
        return audit_feed(self._filters(**{k: options.get(k) for k in AUDIT_FILTER_KEYS}))

    @staticmethod
    def _filters(**given: Any) -> AuditFilters:
        try:
            return AuditFilters.parse(**given)
        except OperationError as exc:
            raise CommandError(exc.message) from None

    def _print(self, events: list[Event], *, json_lines: bool) -> None:
        if not events:
            return
        if json_lines:
            for e in events:
                self.stdout.write(json.dumps(e.as_dict(), cls=StampJSONEncoder))
            self.stdout.flush()
            return
        slugs = self._slugs({e.tenant_id for e in events})
        for e in events:
            when = stamp_text(e.occurred_at)
            who = slugs.get(e.tenant_id) or (str(e.tenant_id) if e.tenant_id else "-")
            data = json.dumps(e.data, cls=StampJSONEncoder, sort_keys=True) if e.data else ""
            self.stdout.write(f"{when}  {e.type:<45} {who:<20} {e.actor:<16} {data}".rstrip())
        self.stdout.flush()

    @staticmethod
    def _slugs(tenant_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Slugs for a page of events in one query, so a line names its tenant readably."""
        return tenant_directory().slugs(tenant_ids)

    # --- verify ---------------------------------------------------------------------------

    def verify(self, options: dict[str, Any]) -> None:
        tenant_id = None
        if options["tenant"]:
            # Named as the feed's filter names it; a slug used twice means its newest tenant.
            tenant_id = self._filters(tenant=options["tenant"]).tenant_ids[0]
        records = self._checkpoints(options["checkpoint"])
        checked, problems = verify_chains(tenant_id=tenant_id)
        chains = EventChain.objects.all()
        if tenant_id is not None:
            chains = chains.filter(tenant_id=tenant_id)
        count = chains.exclude(tenant_id=GLOBAL_CHAIN).count()
        has_global = tenant_id is None and chains.filter(tenant_id=GLOBAL_CHAIN).exists()
        lines = []
        for p in problems:
            chain = "global chain" if p.tenant_id == GLOBAL_CHAIN else f"tenant {p.tenant_id}"
            lines.append(f"{chain} event #{p.seq}: {p.message}")
        lines += verify_checkpoints(records)
        if tenant_id is None:
            lines += self._tenants_without_a_chain()
        if lines:
            for line in lines:
                self.stderr.write(line)
            raise CommandError(
                f"{len(lines)} problem(s) in the audit chains ({checked} events checked"
                + (f", {len(records)} checkpoint(s)" if records else "")
                + ")."
            )
        self.stdout.write(
            f"Audit chains intact: {checked} events in {count} tenant chain(s)"
            + (" and the chain of events without a tenant" if has_global else "")
            + " verified"
            + (f", and all {len(records)} checkpoint(s) hold." if records else ".")
        )
        key = current_key()
        if key.development:
            self.stdout.write(
                "Note: the chain is keyed with the development key (SECRET_KEY unset): it "
                "proves nothing against whoever can read this code. Set CONTROLPLANE_AUDIT_KEY."
            )
        unkeyed = unkeyed_events()
        if unkeyed:
            self.stdout.write(
                f"Note: {unkeyed} event(s) were chained before audit keys (plain SHA-256): "
                "only a checkpoint taken since proves them."
            )

    @staticmethod
    def _tenants_without_a_chain() -> list[str]:
        """Every tenant's first event (tenant.created) starts its chain: a tenant with no chain
        lost its events, e.g. to a TRUNCATE with the triggers off. Found without a checkpoint."""
        chained = EventChain.objects.values("tenant_id")
        orphans = tenant_directory().all_ids().exclude(pk__in=chained)
        return [
            f"tenant {pk} event #1: the tenant has no audit chain (its events are gone)"
            for pk in orphans[:100]
        ]

    def _checkpoints(self, paths: list[str]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for path in paths:
            try:
                with open(path, encoding="utf-8") as lines:
                    found = parse(lines)
            except OSError as exc:
                raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
            except (CheckpointFileError, UnicodeDecodeError) as exc:
                raise CommandError(f"{path}: {exc}") from None
            if not found:
                raise CommandError(f"{path} holds no audit checkpoint.")
            records += found
        return records
