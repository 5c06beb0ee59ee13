from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('models', '0020_report_rollups')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Call',
            name='handoffs',
            field=fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads),
        ),
        ops.AddField(
            model_name='Call',
            name='final_agent_id',
            field=fields.UUIDField(null=True),
        ),
    ]
