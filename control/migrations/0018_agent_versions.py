from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields
from orjson import dumps

# What an agent's version held when versions began: every stored setting but these, the agent's
# own (services.agent_versions.NON_VERSIONED_FIELDS as it was then).
AGENTS_OWN = {"phone_number", "allow_web_calls", "web_call_origins", "web_call_public_key"}


async def first_versions(apps, schema_editor) -> None:
    """Each agent saved before versions existed: its settings become version 1, published."""
    client = schema_editor.client
    postgres = client.capabilities.dialect == "postgres"
    marks = [f"${n}" if postgres else "?" for n in range(1, 5)]
    for row in await client.execute_query_dict('SELECT "id", "workspace_id", "config" FROM "agents"'):
        config = row["config"]
        if isinstance(config, (str, bytes)):
            config = loads(config)
        snapshot = {key: value for key, value in (config or {}).items() if key not in AGENTS_OWN}
        ids = [uuid4(), row["workspace_id"], row["id"]]
        await client.execute_query(
            'INSERT INTO "agent_versions" ("id", "workspace_id", "agent_id", "number", "config", '
            f'"created_at") VALUES ({marks[0]}, {marks[1]}, {marks[2]}, 1, {marks[3]}, '
            "CURRENT_TIMESTAMP)",
            [*(value if postgres else str(value) for value in ids), dumps(snapshot).decode()],
        )
    await client.execute_query(
        'UPDATE "agents" SET "published_version" = 1, "latest_version" = 1'
    )


class Migration(migrations.Migration):
    dependencies = [('models', '0017_agent_tests')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AgentVersion',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='agent_versions', on_delete=OnDelete.CASCADE)),
                ('agent', fields.ForeignKeyField('models.Agent', source_field='agent_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('config', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('version_note', fields.TextField(null=True, unique=False)),
                ('created_by', fields.CharField(null=True, max_length=255)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'agent_versions', 'app': 'models', 'unique_together': (('agent', 'number'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Agent',
            name='auto_publish',
            field=fields.BooleanField(default=True, db_default=True),
        ),
        ops.AddField(
            model_name='Agent',
            name='latest_version',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Agent',
            name='published_version',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Agent',
            name='require_passing_tests',
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name='Agent',
            name='traffic_split',
            field=fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Call',
            name='agent_version',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='TestRun',
            name='agent_version',
            field=fields.IntField(null=True),
        ),
        ops.RunPython(first_versions, ops.RunPython.noop),
    ]
