import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("provisioning", "0001_initial"),
        ("tenants", "0002_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name="AllocationIntent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("kind", models.CharField(max_length=20)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("resolved_at", models.DateTimeField(blank=True, null=True)),
                (
                    "outcome",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Open"),
                            ("recorded", "Recorded in the ledger"),
                            ("released", "Released by lookup"),
                            ("nothing", "Nothing was made"),
                        ],
                        default="",
                        max_length=20,
                    ),
                ),
                ("external_id", models.CharField(blank=True, default="", max_length=500)),
                ("release_error", models.TextField(blank=True, default="")),
                (
                    "run",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="intents",
                        to="provisioning.run",
                    ),
                ),
                (
                    "tenant",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="intents",
                        to="tenants.tenant",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("resolved_at__isnull", True)),
                        fields=("tenant", "kind"),
                        name="allocation_intent_one_open_per_kind",
                    )
                ],
            },
        ),
    ]
