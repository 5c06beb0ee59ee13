from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_lifecycle')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Invitation',
            name='expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Invitation',
            name='token_hash',
            field=fields.CharField(null=True, unique=True, max_length=64),
        ),
    ]
