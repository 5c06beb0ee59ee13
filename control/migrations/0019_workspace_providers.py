from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('models', '0018_agent_versions')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WorkspaceProvider',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='providers', on_delete=OnDelete.CASCADE)),
                ('provider', fields.CharField(max_length=40)),
                ('api_key_encrypted', fields.TextField(null=True, unique=False)),
                ('region', fields.CharField(null=True, max_length=64)),
                ('base_url', fields.CharField(null=True, max_length=2048)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'workspace_providers', 'app': 'models', 'unique_together': (('workspace', 'provider'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
