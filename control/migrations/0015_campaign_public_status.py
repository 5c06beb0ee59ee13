from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0014_delivery_call')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Campaign',
            name='public_status',
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]
