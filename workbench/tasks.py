from __future__ import annotations

import socket

from celery import shared_task

from . import services


@shared_task(name="workbench.record_worker_heartbeat")
def record_worker_heartbeat(hostname: str = "") -> None:
    """Record that a worker took this task; idempotent (it only moves a timestamp forward)."""
    services.worker_heartbeat_record(hostname=hostname or socket.gethostname())
