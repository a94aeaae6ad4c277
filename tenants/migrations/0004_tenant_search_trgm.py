"""Trigram indexes for the tenant list's text search (``q``).

``q`` matches slug, name and admin e-mail with ``icontains``, which PostgreSQL runs as
``UPPER(col::text) LIKE UPPER('%q%')``; a GIN trigram index on exactly those expressions lets
that use an index instead of reading every row.
"""

from django.db import migrations

COLUMNS = ("slug", "name", "admin_email")


def forwards(apps, schema_editor):
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS tenant_{column}_trgm ON tenants_tenant "
            f'USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def backwards(apps, schema_editor):
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS tenant_{column}_trgm")


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_tenant_condition")]

    operations = [migrations.RunPython(forwards, backwards)]
