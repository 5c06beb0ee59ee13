from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index
from control.models.agent_tests import TestRunStatus


class Migration(migrations.Migration):
    dependencies = [('models', '0016_dialer_attempt_keys')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AgentTestCase',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='agent_tests', on_delete=OnDelete.CASCADE)),
                ('agent', fields.ForeignKeyField('models.Agent', source_field='agent_id', db_constraint=True, to_field='id', related_name='tests', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=200)),
                ('kind', fields.CharField(max_length=16)),
                ('definition', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'agent_tests', 'app': 'models', 'unique_together': (('agent', 'name'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TestRun',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='test_runs', on_delete=OnDelete.CASCADE)),
                ('agent', fields.ForeignKeyField('models.Agent', source_field='agent_id', db_constraint=True, to_field='id', related_name='test_runs', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(default=TestRunStatus.QUEUED, description='QUEUED: queued\nRUNNING: running\nPASSED: passed\nFAILED: failed\nERROR: error\nCANCELLED: cancelled', enum_type=TestRunStatus, max_length=16)),
                ('mode', fields.CharField(default='text', max_length=8)),
                ('repeat', fields.IntField(default=1)),
                ('judge', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('cases', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('warnings', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('error', fields.TextField(null=True, unique=False)),
                ('started_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'test_runs', 'app': 'models', 'indexes': [Index(fields=['workspace_id', 'agent_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
