from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


# Idempotency keys (clients' and the dialers') are pruned a day after they were made
# (`control.services.idempotency.prune_expired`): by this index, not by reading the table.
class Migration(migrations.Migration):
    dependencies = [("models", "0021_handoffs")]

    initial = False

    operations = [
        ops.AddIndex(model_name="IdempotencyKey", index=Index(fields=["created_at"])),
        ops.AddIndex(model_name="DialerAttemptKey", index=Index(fields=["created_at"])),
    ]
