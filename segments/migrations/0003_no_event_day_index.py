"""Drop 0002's (environment, name, day) index of the daily event counts again.

With it, PostgreSQL planned the batches of a full evaluation (an event test restricted to a
thousand customers) as a scan of every row in the window through the day index, filtered by
customer, instead of a thousand probes of the unique (environment, name, user_id, day) index:
per batch, a scan of the whole window. The re-check of event windows that it served runs once
per UTC day per segment and reads the unique index's (environment, name) range instead.
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("segments", "0002_event_day_index")]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS segments_eventdailycount_by_day",
            "CREATE INDEX IF NOT EXISTS segments_eventdailycount_by_day "
            "ON customers_eventdailycount (environment_id, name, day)",
        ),
    ]
