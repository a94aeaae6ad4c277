"""The fleet's counts per (state, condition), kept exact by triggers.

The console's list shows how many tenants are in each state and how many need attention; at
100,000 tenants a ``GROUP BY`` over the table costs 20-50 ms per page. Instead, every
statement that inserts, deletes or moves tenants appends its deltas to
``tenants_tenantcount`` in the same transaction, and the list sums a few dozen rows.

- INSERT and DELETE: one statement-level trigger each, reading the transition table, so a
  bulk insert of 5,000 tenants appends one row per (state, condition), not 5,000.
- UPDATE of state or condition: a row-level trigger whose WHEN clause (checked without
  calling the function) skips every update that moves neither, so heartbeats, timestamps and
  the rest cost nothing.
- TRUNCATE (tests' flush): the deltas go too.

Creating the triggers locks out writers until this migration commits, and the backfill runs
after them in the same transaction, so no change is counted twice or missed.
"""

from django.db import migrations, models

FORWARDS = """
CREATE FUNCTION tenants_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenants_tenantcount (state, condition, n)
    SELECT state, condition, COUNT(*) FROM tenants_inserted GROUP BY state, condition;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_count_inserted AFTER INSERT ON tenants_tenant
    REFERENCING NEW TABLE AS tenants_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_count_inserted();

CREATE FUNCTION tenants_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenants_tenantcount (state, condition, n)
    SELECT state, condition, -COUNT(*) FROM tenants_deleted GROUP BY state, condition;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_count_deleted AFTER DELETE ON tenants_tenant
    REFERENCING OLD TABLE AS tenants_deleted
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_count_deleted();

CREATE FUNCTION tenants_count_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tenants_tenantcount (state, condition, n)
    VALUES (OLD.state, OLD.condition, -1), (NEW.state, NEW.condition, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_count_moved AFTER UPDATE OF state, condition ON tenants_tenant
    FOR EACH ROW
    WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.condition IS DISTINCT FROM NEW.condition)
    EXECUTE FUNCTION tenants_count_moved();

CREATE FUNCTION tenants_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tenants_tenantcount;
    RETURN NULL;
END $$;
CREATE TRIGGER tenants_count_truncated AFTER TRUNCATE ON tenants_tenant
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_count_truncated();

INSERT INTO tenants_tenantcount (state, condition, n)
SELECT state, condition, COUNT(*) FROM tenants_tenant GROUP BY state, condition;
"""

BACKWARDS = """
DROP TRIGGER IF EXISTS tenants_count_inserted ON tenants_tenant;
DROP TRIGGER IF EXISTS tenants_count_deleted ON tenants_tenant;
DROP TRIGGER IF EXISTS tenants_count_moved ON tenants_tenant;
DROP TRIGGER IF EXISTS tenants_count_truncated ON tenants_tenant;
DROP FUNCTION IF EXISTS tenants_count_inserted();
DROP FUNCTION IF EXISTS tenants_count_deleted();
DROP FUNCTION IF EXISTS tenants_count_moved();
DROP FUNCTION IF EXISTS tenants_count_truncated();
"""


def forwards(apps, schema_editor):
    schema_editor.execute(FORWARDS)


def backwards(apps, schema_editor):
    schema_editor.execute(BACKWARDS)


class Migration(migrations.Migration):
    dependencies = [("tenants", "0007_roles_see_findings")]

    operations = [
        migrations.CreateModel(
            name="TenantCount",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("state", models.CharField(max_length=20)),
                ("condition", models.CharField(max_length=20)),
                ("n", models.IntegerField()),
            ],
            options={"default_permissions": ()},
        ),
        migrations.RunPython(forwards, backwards),
    ]
