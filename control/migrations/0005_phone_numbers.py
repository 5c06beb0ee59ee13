from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_webhooks')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PhoneNumber',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='phone_numbers', on_delete=OnDelete.CASCADE)),
                ('phone_number', fields.CharField(unique=True, max_length=20)),
                ('source', fields.CharField(max_length=16)),
                ('provider', fields.CharField(max_length=32)),
                ('provider_id', fields.CharField(null=True, max_length=128)),
                ('label', fields.CharField(null=True, max_length=200)),
                ('email', fields.CharField(null=True, max_length=320)),
                ('sip_address', fields.CharField(null=True, max_length=255)),
                ('auth_username', fields.CharField(null=True, max_length=255)),
                ('auth_password_encrypted', fields.TextField(null=True, unique=False)),
                ('krisp_enabled', fields.BooleanField(default=False)),
                ('inbound_trunk_id', fields.CharField(max_length=64)),
                ('outbound_trunk_id', fields.CharField(null=True, max_length=64)),
                ('dispatch_rule_id', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'phone_numbers', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='Call',
            name='room_name',
            field=fields.CharField(null=True, db_index=True, max_length=128),
        ),
    ]
