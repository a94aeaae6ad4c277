"""The keyed chain (issue 23): each event records the id of the audit key its digest was made
with, and the database refuses what only the owner's tools could otherwise do quietly:

- a chain head (``audit_eventchain``) moving backwards, changing in place, or deleted;
- ``TRUNCATE`` of ``audit_event`` or ``audit_eventchain`` (a statement trigger: row triggers
  never see a TRUNCATE).

The test runner empties every table between transactional tests with TRUNCATE; the test
database alone sets ``controlplane.allow_audit_truncate`` (tests/conftest.py). These triggers
stop mistakes and the application's own roles; a database owner can still disable them
(``session_replication_role = replica`` skips them all), which is what the keyed digests and
the checkpoints outside the database are for.
"""

from __future__ import annotations

from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION audit_eventchain_forward_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit chain heads are never deleted';
    END IF;
    IF NEW.tenant_id <> OLD.tenant_id OR NEW.length < OLD.length
       OR (NEW.length = OLD.length AND NEW.head <> OLD.head) THEN
        RAISE EXCEPTION 'an audit chain head only moves forward (%% events, now %%)',
            OLD.length, NEW.length;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_eventchain_forward_only
    BEFORE UPDATE OR DELETE ON audit_eventchain
    FOR EACH ROW EXECUTE FUNCTION audit_eventchain_forward_only();

CREATE OR REPLACE FUNCTION audit_no_truncate() RETURNS trigger AS $$
BEGIN
    IF coalesce(current_setting('controlplane.allow_audit_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'TRUNCATE %% refused: the audit feed is append-only', TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();
CREATE TRIGGER audit_eventchain_no_truncate
    BEFORE TRUNCATE ON audit_eventchain
    FOR EACH STATEMENT EXECUTE FUNCTION audit_no_truncate();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS audit_eventchain_no_truncate ON audit_eventchain;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event;
DROP FUNCTION IF EXISTS audit_no_truncate();
DROP TRIGGER IF EXISTS audit_eventchain_forward_only ON audit_eventchain;
DROP FUNCTION IF EXISTS audit_eventchain_forward_only();
"""


def forward(apps, schema_editor):
    schema_editor.execute(FORWARD)


def backward(apps, schema_editor):
    schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_event_without_tenant")]

    operations = [
        migrations.AddField(
            model_name="event",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
        migrations.RunPython(forward, backward),
    ]
