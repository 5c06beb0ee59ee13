from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from uuid import uuid4
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('models', '0015_campaign_public_status')]

    initial = False

    # The dialers' attempt keys move to a table of their own, out of the clients' reach. Their
    # keys written before stay where they were: a dialer reads its key back only while it
    # retries the attempt that wrote it, and that attempt's call id is found first.
    operations = [
        ops.CreateModel(
            name='DialerAttemptKey',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('key', fields.CharField(max_length=255)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('response', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='dialer_attempt_keys', on_delete=OnDelete.CASCADE)),
            ],
            options={'table': 'dialer_attempt_keys', 'app': 'models', 'unique_together': (('workspace', 'key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
