from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0004_tenant_search_trgm")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="decommission_asked_by",
            field=models.CharField(blank=True, default="", max_length=150),
        ),
        migrations.AddField(
            model_name="tenant",
            name="decommission_asked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
