from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0006_chats')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Call',
            index=Index(fields=['workspace_id', 'call_type', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Call',
            index=Index(fields=['workspace_id', 'call_direction', 'created_at']),
        ),
    ]
