from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

# The hour of a call, in whole hours since the epoch (as `control.services.report_rollups`).
PG_HOUR = 'FLOOR(EXTRACT(EPOCH FROM {row}."created_at") / 3600)::bigint'
SQLITE_HOUR = "(CAST(strftime('%s', {row}.\"created_at\") AS INTEGER) / 3600)"
# What a report reads of a call; a change to anything else (a heartbeat) leaves its hour fresh.
REPORTED_COLUMNS = (
    "workspace_id", "created_at", "agent_id", "agent_version", "call_type", "call_direction",
    "status", "end_reason", "answered_at", "duration_seconds", "usage", "latencies",
    "disposition", "batch_id", "campaign", "campaign_id",
)  # fmt: skip


def _mark(table: str, hour: str) -> str:
    return (
        f'INSERT INTO "report_stale_hours" ("workspace_id", "hour") '
        f'SELECT DISTINCT "workspace_id", {hour.format(row=table)} FROM {table} '
        # SQLite reads an upsert after a SELECT only past a WHERE clause
        'WHERE TRUE ON CONFLICT ("workspace_id", "hour") DO NOTHING;'
    )


# PostgreSQL: inserts and deletes mark per statement, over the transition tables, so a COPY of a
# million calls marks each of its hours once rather than once a row. An update marks per row,
# and only when a reported column changed (a heartbeat's update never runs the function).
PG_CHANGED = " OR ".join(
    f'OLD."{column}" IS DISTINCT FROM NEW."{column}"' for column in REPORTED_COLUMNS
)
PG_TRIGGERS = f"""
CREATE FUNCTION report_rollups_mark_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {_mark("new_calls", PG_HOUR)} RETURN NULL; END $$;
CREATE FUNCTION report_rollups_mark_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {_mark("old_calls", PG_HOUR)} RETURN NULL; END $$;
CREATE FUNCTION report_rollups_mark_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "report_stale_hours" ("workspace_id", "hour")
  SELECT DISTINCT changed.workspace_id, changed.hour FROM (
    VALUES (OLD."workspace_id", {PG_HOUR.format(row="OLD")}),
           (NEW."workspace_id", {PG_HOUR.format(row="NEW")})
  ) AS changed(workspace_id, hour)
  WHERE TRUE ON CONFLICT ("workspace_id", "hour") DO NOTHING;
  RETURN NULL;
END $$;
CREATE TRIGGER "calls_report_inserted" AFTER INSERT ON "calls"
  REFERENCING NEW TABLE AS new_calls FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_mark_new();
CREATE TRIGGER "calls_report_deleted" AFTER DELETE ON "calls"
  REFERENCING OLD TABLE AS old_calls FOR EACH STATEMENT EXECUTE FUNCTION report_rollups_mark_old();
CREATE TRIGGER "calls_report_updated" AFTER UPDATE OF {", ".join(f'"{c}"' for c in REPORTED_COLUMNS)}
  ON "calls" FOR EACH ROW WHEN ({PG_CHANGED})
  EXECUTE FUNCTION report_rollups_mark_changed();
"""
PG_DROP = """
DROP TRIGGER IF EXISTS "calls_report_inserted" ON "calls";
DROP TRIGGER IF EXISTS "calls_report_deleted" ON "calls";
DROP TRIGGER IF EXISTS "calls_report_updated" ON "calls";
DROP FUNCTION IF EXISTS report_rollups_mark_new();
DROP FUNCTION IF EXISTS report_rollups_mark_old();
DROP FUNCTION IF EXISTS report_rollups_mark_changed();
"""


def _sqlite_mark(row: str) -> str:
    return (
        'INSERT INTO "report_stale_hours" ("workspace_id", "hour") '
        f'VALUES ({row}."workspace_id", {SQLITE_HOUR.format(row=row)}) '
        'ON CONFLICT ("workspace_id", "hour") DO NOTHING;'
    )


SQLITE_TRIGGERS = f"""
CREATE TRIGGER "calls_report_inserted" AFTER INSERT ON "calls"
BEGIN {_sqlite_mark("NEW")} END;
CREATE TRIGGER "calls_report_deleted" AFTER DELETE ON "calls"
BEGIN {_sqlite_mark("OLD")} END;
CREATE TRIGGER "calls_report_updated" AFTER UPDATE OF {", ".join(f'"{c}"' for c in REPORTED_COLUMNS)}
ON "calls" BEGIN {_sqlite_mark("OLD")} {_sqlite_mark("NEW")} END;
"""
SQLITE_DROP = """
DROP TRIGGER IF EXISTS "calls_report_inserted";
DROP TRIGGER IF EXISTS "calls_report_deleted";
DROP TRIGGER IF EXISTS "calls_report_updated";
"""


async def _script(schema_editor, postgres: str, sqlite: str) -> None:
    client = schema_editor.client
    await client.execute_script(postgres if client.capabilities.dialect == "postgres" else sqlite)


async def create_triggers(apps, schema_editor) -> None:
    """Every call already stored marks its hour, so the first rollup job computes them all."""
    await _script(schema_editor, PG_TRIGGERS, SQLITE_TRIGGERS)
    hour = PG_HOUR if schema_editor.client.capabilities.dialect == "postgres" else SQLITE_HOUR
    await schema_editor.client.execute_script(_mark('"calls"', hour))


async def drop_triggers(apps, schema_editor) -> None:
    await _script(schema_editor, PG_DROP, SQLITE_DROP)


class Migration(migrations.Migration):
    dependencies = [('models', '0019_workspace_providers')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ReportRollup',
            fields=[
                ('id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='report_rollups', on_delete=OnDelete.CASCADE)),
                ('hour', fields.BigIntField()),
                ('agent_id', fields.UUIDField(null=True)),
                ('agent_version', fields.IntField(null=True)),
                ('call_type', fields.CharField(max_length=8)),
                ('call_direction', fields.CharField(max_length=10)),
                ('status', fields.CharField(max_length=16)),
                ('end_reason', fields.CharField(null=True, max_length=32)),
                ('disposition', fields.CharField(null=True, max_length=64)),
                ('batch_id', fields.UUIDField(null=True)),
                ('campaign', fields.CharField(null=True, max_length=100)),
                ('campaign_id', fields.UUIDField(null=True)),
                ('calls', fields.IntField()),
                ('answered', fields.IntField()),
                ('talked', fields.IntField()),
                ('talk_micros', fields.BigIntField(null=True)),
                ('costed', fields.IntField()),
                ('cost_nanos', fields.BigIntField(null=True)),
            ],
            options={'table': 'report_rollups', 'app': 'models', 'indexes': [('workspace_id', 'hour')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReportLatencyBin',
            fields=[
                ('id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('workspace', fields.ForeignKeyField('models.Workspace', source_field='workspace_id', db_constraint=True, to_field='id', related_name='report_latency_bins', on_delete=OnDelete.CASCADE)),
                ('span', fields.SmallIntField()),
                ('hour', fields.BigIntField()),
                ('agent_id', fields.UUIDField(null=True)),
                ('agent_version', fields.IntField(null=True)),
                ('kind', fields.CharField(max_length=16)),
                ('bin', fields.IntField()),
                ('count', fields.IntField()),
            ],
            options={'table': 'report_latency_bins', 'app': 'models', 'indexes': [('workspace_id', 'span', 'hour')], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReportStaleHour',
            fields=[
                ('id', fields.BigIntField(primary_key=True, unique=True, db_index=True)),
                ('workspace_id', fields.UUIDField()),
                ('hour', fields.BigIntField()),
            ],
            options={'table': 'report_stale_hours', 'app': 'models', 'unique_together': (('workspace_id', 'hour'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.RunPython(create_triggers, drop_triggers),
    ]
