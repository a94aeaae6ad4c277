"""The approval policy: ``ApprovalRequest`` and the tenant's ``awaiting_approval`` mark.

A decommission waiting under four eyes (``decommission_asked_by`` set, not started) becomes a
waiting request of the one mechanism, then the two four-eyes fields go; the roles are synced
again so viewers can read requests in the admin.
"""

import django.db.models.deletion
import django.utils.timezone
import uuid
from django.conf import settings
import importlib
from datetime import timedelta

from django.db import migrations, models

create_roles = importlib.import_module("tenants.migrations.0002_roles").create_roles


def waiting_decommissions_to_requests(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    ApprovalRequest = apps.get_model("tenants", "ApprovalRequest")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    ttl = timedelta(seconds=settings.CONTROLPLANE_APPROVAL_TTL)
    waiting = Tenant.objects.exclude(decommission_asked_by="").filter(
        decommission_requested_at__isnull=True
    )
    for tenant in waiting:
        asked_at = tenant.decommission_asked_at or django.utils.timezone.now()
        user = User.objects.filter(username=tenant.decommission_asked_by).first()
        ApprovalRequest.objects.create(
            operation="decommission",
            tenant=tenant,
            requested_by=tenant.decommission_asked_by,
            requested_actor=f"user:{tenant.decommission_asked_by}",
            requested_user=user,
            trusted=user is None,
            requested_at=asked_at,
            expires_at=asked_at + ttl,
        )
        tenant.awaiting_approval = "decommission"
        tenant.save(update_fields=["awaiting_approval"])


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0008_tenant_counts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="awaiting_approval",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.CreateModel(
            name="ApprovalRequest",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid.uuid4, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("operation", models.CharField(max_length=40)),
                ("selection", models.JSONField(blank=True, default=dict)),
                ("reason", models.TextField(blank=True, default="")),
                ("options", models.JSONField(blank=True, default=dict)),
                ("requested_by", models.CharField(max_length=150)),
                ("requested_actor", models.CharField(max_length=200)),
                ("trusted", models.BooleanField(default=False)),
                ("requested_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("waiting", "Waiting"),
                            ("approved", "Approved"),
                            ("withdrawn", "Withdrawn"),
                            ("expired", "Expired"),
                            ("refused", "Refused"),
                        ],
                        default="waiting",
                        max_length=20,
                    ),
                ),
                ("decided_by", models.CharField(blank=True, default="", max_length=150)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                ("outcome", models.TextField(blank=True, default="")),
                (
                    "requested_user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="approvals",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["-requested_at", "-id"],
                "default_permissions": ("view",),
                "indexes": [
                    models.Index(fields=["status", "expires_at"], name="approval_status_expiry_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("status", "waiting"), ("tenant__isnull", False)),
                        fields=("tenant", "operation"),
                        name="approval_one_waiting_per_tenant_operation",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "status__in",
                                ["waiting", "approved", "withdrawn", "expired", "refused"],
                            )
                        ),
                        name="approval_status_known",
                    ),
                ],
            },
        ),
        migrations.RunPython(waiting_decommissions_to_requests, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="tenant",
            name="decommission_asked_at",
        ),
        migrations.RemoveField(
            model_name="tenant",
            name="decommission_asked_by",
        ),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
