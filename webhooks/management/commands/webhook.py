"""``manage.py webhook add|list|remove``: subscriptions from a shell (parse, call, print)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from webhooks import services


class Command(BaseCommand):
    help = "Manage webhook subscriptions."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="subscribe a URL to events")
        add.add_argument("url")
        add.add_argument(
            "--events",
            required=True,
            help="event types or dotted prefixes, comma separated (tenant.provisioning)",
        )
        add.add_argument("--secret", help="signing key (16+ characters); generated if omitted")
        sub.add_parser("list", help="list subscriptions")
        remove = sub.add_parser("remove", help="remove a subscription and its delivery log")
        remove.add_argument("id")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except services.WebhookError as exc:
            raise CommandError(exc.message) from None

    def _add(self, options: dict[str, Any]) -> None:
        subscription = services.add_subscription(
            url=options["url"], events=options["events"], secret=options.get("secret")
        )
        self.stdout.write(
            f"Subscribed #{subscription.pk} {subscription.url} to {', '.join(subscription.events)}."
        )
        if not options.get("secret"):
            self.stdout.write(
                f"Signing secret (shown once, keep it with the receiver): {subscription.secret}"
            )

    def _list(self, options: dict[str, Any]) -> None:
        rows = list(services.subscription_list())
        if not rows:
            self.stdout.write("No webhook subscriptions.")
            return
        for s in rows:
            state = "active" if s.active else "inactive"
            self.stdout.write(f"#{s.pk}\t{state}\t{s.url}\t{','.join(s.events)}")

    def _remove(self, options: dict[str, Any]) -> None:
        subscription = services.remove_subscription(subscription_id=options["id"])
        self.stdout.write(f"Removed #{subscription.pk} {subscription.url}.")
