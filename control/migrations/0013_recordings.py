from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0012_call_control')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Workspace',
            name='recording_retention_days',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Call',
            name='recording_key',
            field=fields.CharField(null=True, max_length=255),
        ),
    ]
