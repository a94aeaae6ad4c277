"""Store each tenant's condition (see provisioning.conditions), backfilled for existing rows."""

from django.db import migrations, models


def backfill(apps, schema_editor):
    # The rule itself is a pure function of the rows, so it works on historical models too.
    from provisioning.conditions import derive_condition

    Tenant = apps.get_model("tenants", "Tenant")
    Run = apps.get_model("provisioning", "Run")
    StepExecution = apps.get_model("provisioning", "StepExecution")
    Allocation = apps.get_model("provisioning", "Allocation")
    for tenant in Tenant.objects.exclude(state="decommissioned").iterator():
        run = step = None
        if tenant.state == "provisioning" and tenant.workflow_id:
            run = Run.objects.filter(pk=tenant.workflow_id).first()
            if run is not None and run.current_step:
                step = StepExecution.objects.filter(run=run, name=run.current_step).first()
        release_failed = (
            Allocation.objects.filter(tenant_id=tenant.pk, released_at__isnull=True)
            .exclude(release_error="")
            .exists()
        )
        value = derive_condition(tenant, run, step, release_failed=release_failed)
        if value != "ok":
            Tenant.objects.filter(pk=tenant.pk).update(condition=value)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_roles"),
        ("provisioning", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="condition",
            field=models.CharField(
                choices=[
                    ("progressing", "Progressing"),
                    ("retrying", "Retrying"),
                    ("lost", "Lost try, resending"),
                    ("stalled", "Stalled"),
                    ("orphaned", "Orphaned"),
                    ("cancelling", "Cancelling"),
                    ("rolling_back", "Rolling back"),
                    ("release_failed", "Release failed"),
                    ("decommissioning", "Decommissioning"),
                    ("failed", "Failed"),
                    ("ok", "OK"),
                ],
                default="ok",
                editable=False,
                max_length=20,
            ),
        ),
        migrations.AddIndex(
            model_name="tenant",
            index=models.Index(
                fields=["condition", "created_at", "id"], name="tenant_condition_created_idx"
            ),
        ),
        migrations.AddIndex(
            model_name="tenant",
            index=models.Index(
                condition=models.Q(
                    ("condition__in", ("stalled", "orphaned", "release_failed", "failed"))
                ),
                fields=["created_at", "id"],
                name="tenant_attention_created_idx",
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
