"""A schedule keeps its operation's own arguments (change_plan's plan), so every operation of
the table can be scheduled."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0011_pause_schedules"),
    ]

    operations = [
        migrations.AddField(
            model_name="schedule",
            name="options",
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
