"""``manage.py reconcile [--fix] [--json]``: the allocation ledger against what the providers
really hold. Prints every leaked and missing resource; exits 1 when it finds any (after
``--fix`` too, so a script sees that something was wrong)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import SYSTEM
from provisioning import reconcile


class Command(BaseCommand):
    help = "Compare the allocation ledger with what the providers hold; --fix repairs drift."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--fix",
            action="store_true",
            help="release leaked resources and mark missing allocations released with an error",
        )
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        findings = reconcile.find_drift()
        reconcile.record_findings(findings)
        report = reconcile.fix(findings, actor=SYSTEM) if options["fix"] and findings else None
        if options["json"]:
            doc: dict[str, Any] = {"findings": [f.as_dict() for f in findings]}
            if report is not None:
                doc["fixed"] = {
                    "released": [f.as_dict() for f in report.released],
                    "marked_missing": [f.as_dict() for f in report.marked_missing],
                    "skipped": [{**f.as_dict(), "why": why} for f, why in report.skipped],
                }
            self.stdout.write(json.dumps(doc, indent=2))
        else:
            for f in findings:
                owner = f"tenant {f.tenant_id}" if f.tenant_id else "no known tenant"
                self.stdout.write(f"{f.problem:8} {f.kind:9} {f.external_id}  ({owner})")
            if report is not None:
                for f in report.released:
                    self.stdout.write(f"released {f.kind} {f.external_id}")
                for f in report.marked_missing:
                    self.stdout.write(f"marked released (missing) {f.kind} {f.external_id}")
                for f, why in report.skipped:
                    self.stdout.write(f"not fixed {f.kind} {f.external_id}: {why}")
            leaked = sum(f.problem == reconcile.LEAKED for f in findings)
            self.stdout.write(
                f"{leaked} leaked, {len(findings) - leaked} missing"
                if findings
                else "The ledger matches the providers: nothing leaked, nothing missing."
            )
        if findings:
            raise CommandError(f"{len(findings)} finding(s)", returncode=1)
