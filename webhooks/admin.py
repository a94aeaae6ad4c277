"""Subscriptions (superusers: they hold the signing secrets) and the read-only delivery log."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from controlplane.admin import ReadOnlyAdmin

from . import services
from .models import Delivery, DeliveryAttempt, Subscription


class SubscriptionForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")
    events_text = forms.CharField(
        label="Events",
        help_text="Event types or dotted prefixes, comma separated (tenant.provisioning).",
    )
    secret = forms.CharField(
        required=False,
        help_text=(
            "Key of the X-Controlplane-Signature HMAC (16+ characters). Leave empty to generate "
            "one (shown once after saving), or, when changing, to keep the current one."
        ),
    )

    class Meta:
        model = Subscription
        fields = ["url", "events_text", "secret", "active"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["events_text"] = ",".join(self.instance.events)
        self.initial["secret"] = ""  # never rendered back into the page

    def _service(self, check: Any, value: Any) -> Any:
        try:
            return check(value)
        except services.WebhookError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_url(self) -> str:
        return self._service(services.check_url, self.cleaned_data.get("url", ""))

    def clean_events_text(self) -> list[str]:
        return self._service(services.parse_patterns, self.cleaned_data.get("events_text", ""))

    def clean_secret(self) -> str:
        secret = self.cleaned_data.get("secret", "")
        if not secret and self.instance.pk:
            return self.instance.secret  # unchanged
        return self._service(services.check_secret, secret)

    def save(self, commit: bool = True) -> Subscription:
        self.instance.events = self.cleaned_data["events_text"]
        return super().save(commit=commit)


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionForm
    list_display = ["id", "url", "patterns", "active", "created_at"]
    list_filter = ["active"]

    def response_add(
        self, request: HttpRequest, obj: Subscription, post_url_continue: str | None = None
    ) -> HttpResponse:
        """A generated secret is shown once, on a page of its own (never cached), not in a
        message: messages travel in a signed but readable cookie (issue 23)."""
        if request.POST.get("secret"):
            return super().response_add(request, obj, post_url_continue)
        context = {**self.admin_site.each_context(request), "subscription": obj, "opts": self.opts}
        response = TemplateResponse(request, "admin/webhooks/subscription/secret.html", context)
        add_never_cache_headers(response)
        return response

    @admin.display(description="events")
    def patterns(self, obj: Subscription) -> str:
        return ", ".join(obj.events)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ["number", "at", "status_code", "duration_ms", "response", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "event_type",
        "subscription_id",
        "status",
        "attempts",
        "last_status_code",
        "next_attempt_at",
    ]
    list_filter = ["status", "event_type"]
    search_fields = ["=id", "event_type"]
    readonly_fields = [
        "id",
        "subscription",
        "event",
        "event_type",
        "status",
        "attempts",
        "next_attempt_at",
        "claimed_at",
        "last_status_code",
        "last_response",
        "last_error",
        "created_at",
        "delivered_at",
        "redelivery_of",
    ]
    inlines = [AttemptInline]
    actions = ["redeliver"]

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    @admin.action(description="Redeliver the selected deliveries (as new deliveries)")
    def redeliver(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        done = 0
        for delivery in queryset:
            services.redeliver(delivery_id=delivery.pk)
            done += 1
        self.message_user(request, f"{done} delivery(ies) queued again.", messages.SUCCESS)
