"""Viewers (and so operators and admins) may read reconciliation's findings in the admin, as
they read runs and allocations: the roles are synced again now that the model exists."""

from __future__ import annotations

import importlib

from django.db import migrations

create_roles = importlib.import_module("tenants.migrations.0002_roles").create_roles


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0006_decommission_claim"),
        ("provisioning", "0003_resourcefinding"),
    ]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
