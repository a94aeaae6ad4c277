"""``manage.py create_api_token USERNAME --name NAME [--expires-in DAYS]``, ``--list``,
``--revoke``. Tokens expire after CONTROLPLANE_API_TOKEN_DAYS (90) unless ``--expires-in``
says otherwise.

The token is printed once, on its own line on stdout, so a script can capture it; only its
SHA-256 is stored.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.models import ApiToken
from api.tokens import TokenError, issue_token, revoke_token


class Command(BaseCommand):
    help = "Create an API token for a user (printed once), list tokens, or revoke one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="the user the token acts as")
        parser.add_argument("--name", help="the token's name, recorded as token:<name>")
        parser.add_argument(
            "--expires-in",
            "--expires",
            dest="expires",
            type=int,
            metavar="DAYS",
            help=f"expire after DAYS (default {settings.CONTROLPLANE_API_TOKEN_DAYS})",
        )
        parser.add_argument("--list", action="store_true", help="list tokens (never secrets)")
        parser.add_argument("--revoke", metavar="NAME", help="revoke the token named NAME")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            self._list(options["username"])
        elif options["revoke"]:
            try:
                token = revoke_token(name=options["revoke"])
            except TokenError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"Revoked token {token.name} (user {token.user.get_username()}).")
        else:
            self._create(options["username"], options["name"], options["expires"])

    def _create(self, username: str | None, name: str | None, expires: int | None) -> None:
        if not username or not name:
            raise CommandError("Usage: create_api_token USERNAME --name NAME [--expires-in DAYS]")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user is named {username!r}.")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not work.")
        try:
            token, raw = issue_token(user=user, name=name, expires_days=expires)
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        until = f", expires {token.expires_at:%Y-%m-%d %H:%M} UTC" if token.expires_at else ""
        self.stderr.write(
            f"Token {token.name} for {username}{until}. It is shown once; store it now:"
        )
        self.stdout.write(raw)

    def _list(self, username: str | None) -> None:
        tokens = ApiToken.objects.select_related("user").order_by("name")
        if username:
            tokens = tokens.filter(user__username=username)
        rows = [
            (
                t.name,
                t.user.get_username(),
                t.prefix + "…",
                t.status,
                f"{t.created_at:%Y-%m-%d}",
                f"{t.expires_at:%Y-%m-%d}" if t.expires_at else "never",
                f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never",
            )
            for t in tokens
        ]
        if not rows:
            self.stdout.write("No API tokens.")
            return
        header = ("NAME", "USER", "PREFIX", "STATUS", "CREATED", "EXPIRES", "LAST USED")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
