from tortoise import migrations
from tortoise.migrations import operations as ops
from control.models import BatchStatus, ItemStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_security')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Batch',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='batches', on_delete=OnDelete.CASCADE)),
                ('agent', fields.ForeignKeyField('models.Agent', source_field='agent_id', null=True, db_constraint=True, to_field='id', related_name='batches', on_delete=OnDelete.SET_NULL)),
                ('name', fields.CharField(max_length=200)),
                ('agent_phone_number', fields.CharField(max_length=20)),
                ('status', fields.CharEnumField(default=BatchStatus.SCHEDULED, description='SCHEDULED: scheduled\nRUNNING: running\nPAUSED: paused\nCOMPLETED: completed\nCANCELLED: cancelled', enum_type=BatchStatus, max_length=16)),
                ('scheduled_time', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('timezone', fields.CharField(default='UTC', max_length=64)),
                ('earliest_time', fields.CharField(null=True, max_length=5)),
                ('latest_time', fields.CharField(null=True, max_length=5)),
                ('calls_per_minute', fields.IntField(default=60)),
                ('max_attempts', fields.IntField(default=1)),
                ('retry_delay_minutes', fields.IntField(default=30)),
                ('retry_on', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('total_items', fields.IntField(default=0)),
                ('rejected_count', fields.IntField(default=0)),
                ('rejects', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('next_dial_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('progress_seq', fields.IntField(default=0)),
                ('progress_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('progress_digest', fields.CharField(null=True, max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'batches', 'app': 'models', 'indexes': [Index(fields=['workspace_id', 'created_at']), Index(fields=['status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BatchItem',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('batch', fields.ForeignKeyField('models.Batch', source_field='batch_id', db_constraint=True, to_field='id', related_name='items', on_delete=OnDelete.CASCADE)),
                ('workspace_id', fields.UUIDField()),
                ('line', fields.IntField()),
                ('phone_number', fields.CharField(max_length=20)),
                ('variables', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('status', fields.CharEnumField(default=ItemStatus.PENDING, description='PENDING: pending\nCALLING: calling\nCOMPLETED: completed\nFAILED: failed\nRETRYING: retrying\nCANCELLED: cancelled', enum_type=ItemStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('call_id', fields.UUIDField(null=True)),
                ('outcome', fields.CharField(null=True, max_length=16)),
                ('error', fields.TextField(null=True, unique=False)),
                ('attempt_log', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'batch_items', 'app': 'models', 'indexes': [Index(fields=['batch_id', 'status', 'next_attempt_at']), Index(fields=['batch_id', 'line']), Index(fields=['batch_id', 'phone_number']), Index(fields=['call_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
