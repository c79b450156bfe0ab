from __future__ import annotations

import os
import sys

from django.apps import AppConfig


class WorkbenchConfig(AppConfig):
    name = "workbench"
    verbose_name = "Workbench"

    def ready(self) -> None:
        from django.conf import settings

        # `make run` serves without a broker: run beat's schedule in this process (in the
        # autoreloader's child, which is the process that serves requests). With a broker,
        # `celery beat` is the scheduler and this thread would be a second one.
        serving = os.environ.get("RUN_MAIN") == "true" or "--noreload" in sys.argv
        if settings.INPROCESS_BEAT and settings.CELERY_TASK_ALWAYS_EAGER and serving:
            from .inprocess import start_beat_thread

            start_beat_thread()
