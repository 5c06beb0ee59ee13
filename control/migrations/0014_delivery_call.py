from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from uuid import UUID
from tortoise import fields
from tortoise.indexes import Index


async def backfill_call_ids(apps, schema_editor) -> None:
    """The call each queued or sent event is about, from its payload (`data.call_id`)."""
    client = schema_editor.client
    placeholder = "$1" if client.capabilities.dialect == "postgres" else "?"
    second = "$2" if placeholder == "$1" else "?"
    rows = await client.execute_query_dict('SELECT "id", "payload" FROM "webhook_deliveries"')
    for row in rows:
        payload = row["payload"]
        if isinstance(payload, (str, bytes)):
            payload = loads(payload)
        data = payload.get("data") if isinstance(payload, dict) else None
        try:
            call_id = UUID(str(data["call_id"]))
        except (TypeError, KeyError, ValueError):
            continue
        value = call_id if placeholder == "$1" else str(call_id)
        await client.execute_query(
            f'UPDATE "webhook_deliveries" SET "call_id" = {placeholder} WHERE "id" = {second}',
            [value, row["id"]],
        )


class Migration(migrations.Migration):
    dependencies = [('models', '0013_recordings')]

    initial = False

    operations = [
        ops.AddField(
            model_name='WebhookDelivery',
            name='call_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddIndex(
            model_name='WebhookDelivery',
            index=Index(fields=['workspace_id', 'call_id']),
        ),
        ops.RunPython(backfill_call_ids, ops.RunPython.noop),
    ]
