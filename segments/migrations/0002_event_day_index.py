"""An index of the daily event counts by day, for the time-relative re-check.

It lives here although the table is customers': only segments reads the rollup by day (which
customers had events on the day that just left a `withinLastDays` window,
segments.services.segments_time_recheck); customers' own reads go by customer. RunSQL with
IF NOT EXISTS, so the index is written once whichever app declares it first.
"""

from __future__ import annotations

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0001_initial"),
        ("customers", "0002_events"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS segments_eventdailycount_by_day "
            "ON customers_eventdailycount (environment_id, name, day)",
            "DROP INDEX IF EXISTS segments_eventdailycount_by_day",
        ),
    ]
