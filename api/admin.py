"""API tokens in the admin: create (the secret is shown once, on the page after saving), list,
revoke. A token's secret is never stored, so nothing here can show it again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from .models import ApiToken
from .tokens import MAX_EXPIRY_DAYS, TokenError, check_name, issue_token, recent_tokens


class ApiTokenCreationForm(forms.ModelForm):
    expires_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_EXPIRY_DAYS,
        label="Expires after (days)",
        help_text="Empty: the default (CONTROLPLANE_API_TOKEN_DAYS). Every token expires.",
    )

    class Meta:
        model = ApiToken
        fields = ["name", "user"]

    def clean_name(self) -> str:
        try:
            return check_name(self.cleaned_data["name"])
        except TokenError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "status", "created_at", "expires_at", "last_used_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "user"]
    search_fields = ["name", "user__username"]
    actions = ["revoke"]
    readonly_fields = [
        "name",
        "user",
        "prefix",
        "status",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = ApiTokenCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return ["name", "user", "expires_days"]
        return list(self.readonly_fields)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Tokens are never edited; the change page is a read-only view.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Revoke instead: a deleted token's name could be issued again, and the audit feed's
        # token:<name> would then name two tokens.
        return False

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("api.change_apitoken")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return
        try:
            token, raw = issue_token(
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
                expires_days=form.cleaned_data.get("expires_days"),
            )
        except TokenError as exc:
            raise forms.ValidationError(str(exc)) from None
        obj.pk = token.pk
        obj.__dict__.update(token.__dict__)
        # Kept on the instance for response_add only; never written anywhere.
        obj._raw_token = raw  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiToken, post_url_continue: Any = None
    ) -> HttpResponse:
        # Rendered directly rather than redirected with a message: a message would sit in the
        # session or a cookie until shown, and the secret must not be stored anywhere.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "raw_token": getattr(obj, "_raw_token", ""),
            "title": f"API token {obj.name} created",
        }
        response = TemplateResponse(request, "admin/api/apitoken/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        recent_tokens.forget_all()  # an UPDATE sends no post_save
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
