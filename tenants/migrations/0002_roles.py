"""The three roles: viewer (read only), operator (day-to-day repair), admin (also decommission)."""

from __future__ import annotations

from django.contrib.auth.management import create_permissions
from django.db import migrations

VIEW = [
    ("tenants", "view_tenant"),
    ("audit", "view_event"),
    ("provisioning", "view_run"),
    ("provisioning", "view_stepexecution"),
    ("provisioning", "view_allocation"),
]
OPERATE = [
    ("tenants", "add_tenant"),
    ("tenants", "cancel_provisioning"),
    ("tenants", "reset_provisioning"),
    ("tenants", "retry_provisioning"),
    ("tenants", "suspend_tenant"),
    ("tenants", "resume_tenant"),
]
ADMINISTER = [("tenants", "decommission_tenant")]
ROLES = {"viewer": VIEW, "operator": VIEW + OPERATE, "admin": VIEW + OPERATE + ADMINISTER}


def create_roles(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=role)
        for app_label, codename in perms:
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0001_initial"),
        ("audit", "0001_initial"),
        ("provisioning", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
