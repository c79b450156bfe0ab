"""On PostgreSQL the rollup's unique index also carries `count` (INCLUDE), so segment event
tests read the index alone. The model declares the plain constraint, which SQLite keeps: Django
drops a constraint with `include` on databases without covering indexes, and the rollup's
upsert needs it everywhere."""

from __future__ import annotations

from django.db import migrations

CONSTRAINT = "one_event_count_per_customer_name_day"


def cover_count(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("customers", "EventDailyCount")._meta.db_table
    schema_editor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{CONSTRAINT}"')
    schema_editor.execute(
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{CONSTRAINT}" '
        '  UNIQUE ("environment_id", "name", "user_id", "day") INCLUDE ("count")'
    )


def uncover_count(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    table = apps.get_model("customers", "EventDailyCount")._meta.db_table
    schema_editor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{CONSTRAINT}"')
    schema_editor.execute(
        f'ALTER TABLE "{table}" ADD CONSTRAINT "{CONSTRAINT}" UNIQUE ("environment_id", "name", "user_id", "day")'
    )


class Migration(migrations.Migration):
    dependencies = [("customers", "0002_events")]

    operations = [migrations.RunPython(cover_count, uncover_count)]
