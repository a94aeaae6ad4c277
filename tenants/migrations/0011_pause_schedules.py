"""Pause / unpause (two permissions, condition ``paused``) and scheduled operations; the
roles are synced again so operators and admins get the new permissions."""

import importlib

import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models

create_roles = importlib.import_module("tenants.migrations.0002_roles").create_roles


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0010_plan_change_updating'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("provisioning", "0007_run_pause"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='tenant',
            options={'ordering': ['-created_at', '-id'], 'permissions': [('cancel_provisioning', 'Can cancel an in-flight provisioning'), ('reset_provisioning', 'Can reset a stuck provisioning'), ('retry_provisioning', 'Can retry provisioning'), ('suspend_tenant', 'Can suspend a tenant'), ('resume_tenant', 'Can resume a tenant'), ('decommission_tenant', 'Can decommission a tenant'), ('change_plan_tenant', "Can change a tenant's plan"), ('pause_run', "Can pause a tenant's live run"), ('unpause_run', "Can unpause a tenant's paused run")]},
        ),
        migrations.AlterField(
            model_name='tenant',
            name='condition',
            field=models.CharField(choices=[('progressing', 'Progressing'), ('retrying', 'Retrying'), ('lost', 'Lost try, resending'), ('stalled', 'Stalled'), ('orphaned', 'Orphaned'), ('cancelling', 'Cancelling'), ('rolling_back', 'Rolling back'), ('release_failed', 'Release failed'), ('decommissioning', 'Decommissioning'), ('paused', 'Paused'), ('failed', 'Failed'), ('change_failed', 'Plan change failed'), ('ok', 'OK')], default='ok', editable=False, max_length=20),
        ),
        migrations.CreateModel(
            name='Schedule',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('operation', models.CharField(max_length=40)),
                ('actor', models.CharField(max_length=200)),
                ('trusted', models.BooleanField(default=False)),
                ('bulk', models.BooleanField(default=False)),
                ('ids', models.JSONField(blank=True, default=list)),
                ('filter', models.JSONField(blank=True, default=dict)),
                ('limit', models.PositiveIntegerField(blank=True, null=True)),
                ('reason', models.TextField(blank=True, default='')),
                ('faults', models.JSONField(blank=True, default=dict)),
                ('at', models.DateTimeField()),
                ('status', models.CharField(choices=[('scheduled', 'Scheduled'), ('done', 'Done'), ('refused', 'Refused'), ('cancelled', 'Cancelled')], default='scheduled', max_length=20)),
                ('outcome', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('cancelled_by', models.CharField(blank=True, default='', max_length=200)),
                ('author', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('tenant', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='schedules', to='tenants.tenant')),
            ],
            options={
                'ordering': ['at', 'id'],
                'default_permissions': ('view',),
                'indexes': [models.Index(condition=models.Q(('status', 'scheduled')), fields=['at'], name='schedule_due_idx')],
            },
        ),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
