"""Trigram indexes for the tenant search (``q``: slug, name or admin e-mail contains, any case).

Django's ``icontains`` on PostgreSQL is ``UPPER(col::text) LIKE UPPER('%…%')``, which no b-tree
can serve; a GIN ``gin_trgm_ops`` index on that same expression can. PostgreSQL only: SQLite (the
development database) has no such index and keeps its scan.
"""

from django.db import migrations

COLUMNS = ("slug", "name", "admin_email")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in COLUMNS:
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS tenants_tenant_{column}_trgm ON tenants_tenant "
            f"USING gin ((UPPER({column}::text)) gin_trgm_ops)"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in COLUMNS:
        schema_editor.execute(f"DROP INDEX IF EXISTS tenants_tenant_{column}_trgm")


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_roles")]

    operations = [migrations.RunPython(forwards, backwards)]
