from tortoise import migrations
from tortoise.migrations import operations as ops
from control.models import DncSource, Locale, ProspectStatus, ProspectUploadStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0010_batches')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.CASCADE)),
                ('agent', fields.ForeignKeyField('models.Agent', source_field='agent_id', null=True, db_constraint=True, to_field='id', related_name='campaigns', on_delete=OnDelete.SET_NULL)),
                ('created_by_id', fields.UUIDField(null=True)),
                ('created_by_email', fields.CharField(null=True, max_length=320)),
                ('name', fields.CharField(max_length=200)),
                ('slug', fields.CharField(unique=True, max_length=80)),
                ('locale_name', fields.CharEnumField(default=Locale.USCA, description='USCA: USCA\nIN: IN\nUK: UK', enum_type=Locale, max_length=8)),
                ('active', fields.BooleanField(default=True)),
                ('agent_phone_number', fields.CharField(max_length=20)),
                ('call_ratio', fields.FloatField(default=1.0)),
                ('dialer_interval', fields.IntField(default=10)),
                ('max_active_calls', fields.IntField(default=0)),
                ('max_number_calls', fields.IntField(default=10)),
                ('min_time_between_calls', fields.IntField(default=30)),
                ('dupe_days', fields.IntField(default=90)),
                ('expire_days', fields.IntField(default=90)),
                ('earliest_prospect_time', fields.CharField(default='09:00', max_length=5)),
                ('latest_prospect_time', fields.CharField(default='21:00', max_length=5)),
                ('dispositions', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('next_dial_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'campaigns', 'app': 'models', 'unique_together': (('workspace', 'name'),), 'indexes': [Index(fields=['workspace_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='DncNumber',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='dnc_numbers', on_delete=OnDelete.CASCADE)),
                ('phone_number', fields.CharField(max_length=20)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('source', fields.CharEnumField(default=DncSource.API, description='API: api\nDISPOSITION: disposition\nWEBHOOK: webhook', enum_type=DncSource, max_length=16)),
                ('created_by_email', fields.CharField(null=True, max_length=320)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'dnc_numbers', 'app': 'models', 'unique_together': (('workspace', 'phone_number'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProspectUpload',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='uploads', on_delete=OnDelete.CASCADE)),
                ('workspace_id', fields.UUIDField()),
                ('list_name', fields.CharField(max_length=200)),
                ('priority', fields.IntField(default=0)),
                ('status', fields.CharEnumField(default=ProspectUploadStatus.PENDING, description='PENDING: pending\nPROCESSING: processing\nCOMPLETED: completed\nFAILED: failed', enum_type=ProspectUploadStatus, max_length=16)),
                ('file_path', fields.CharField(null=True, max_length=1024)),
                ('attempts', fields.IntField(default=0)),
                ('total_rows', fields.IntField(default=0)),
                ('added_count', fields.IntField(default=0)),
                ('rejected_count', fields.IntField(default=0)),
                ('rejects', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'prospect_uploads', 'app': 'models', 'indexes': [Index(fields=['campaign_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Prospect',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('models.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='prospects', on_delete=OnDelete.CASCADE)),
                ('upload', fields.ForeignKeyField('models.ProspectUpload', source_field='upload_id', null=True, db_constraint=True, to_field='id', related_name='prospects', on_delete=OnDelete.CASCADE)),
                ('workspace_id', fields.UUIDField()),
                ('line', fields.IntField(null=True)),
                ('phone_number', fields.CharField(max_length=20)),
                ('name', fields.CharField(null=True, max_length=200)),
                ('timezones', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('variables', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('priority', fields.IntField(default=0)),
                ('status', fields.CharEnumField(default=ProspectStatus.PENDING, description='PENDING: pending\nCALLING: calling\nRETRYING: retrying\nCALLBACK: callback\nCOMPLETED: completed\nFAILED: failed\nDNC: dnc\nEXPIRED: expired\nCANCELLED: cancelled', enum_type=ProspectStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('call_id', fields.UUIDField(null=True)),
                ('outcome', fields.CharField(null=True, max_length=16)),
                ('disposition', fields.CharField(null=True, max_length=64)),
                ('error', fields.TextField(null=True, unique=False)),
                ('attempt_log', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('skip_reason', fields.CharField(null=True, max_length=64)),
                ('last_called_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('callback_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'prospects', 'app': 'models', 'unique_together': (('upload', 'line'),), 'indexes': [Index(fields=['workspace_id', 'phone_number']), Index(fields=['call_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        # The dialer's due-prospect query (control/services/campaign_dialer.py) reads this index
        # in order; tortoise's Index cannot say DESC.
        ops.RunSQL(
            'CREATE INDEX "idx_prospects_due" ON "prospects" '
            '("campaign_id", "status", "priority" DESC, "next_attempt_at")',
            reverse_sql='DROP INDEX "idx_prospects_due"',
        ),
        ops.AddField(
            model_name='Call',
            name='campaign_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddIndex(
            model_name='Call',
            index=Index(fields=['workspace_id', 'campaign_id', 'created_at']),
        ),
    ]
