"""A customers-dashboard send to 10,000 customers (issue 13): seconds from the click to every
start accepted, against the start pipeline accepting the same starts directly.

The measured side: an editor's "Send to N customers" (the confirm POST of the dashboard, with
a rule that matches BENCH_DASHBOARD_CUSTOMERS customers, default 10,000) through the Workbench
view in this process, then one Celery worker process runs the send; the clock runs from the
POST until the send is completed with every customer's invocation written.

The reference, in the same run: the same number of one-target live starts handed straight to
`invocations_accept` in this process, in chunks of the send's own size, under their own keys:
the pipeline's cost with no dashboard around it (no audience query, no task, no progress).
The ratio is reference seconds / measured seconds: 1.0 means the dashboard adds nothing.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from bench.harness import BenchError, Result, empty_scratch_environment
from bench.processes import celery_worker, drop_queue, new_queue, service_environment

ENVIRONMENT_SLUG = "bench-dashboard"
CUSTOMERS = int(os.environ.get("BENCH_DASHBOARD_CUSTOMERS", "10000"))
TIMEOUT_SECONDS = 600
RULES = {"match": "all", "conditions": [{"tag": "bench", "op": "has"}]}


def prepare() -> tuple[Any, Any, Any]:
    """The environment with its customers (tagged `bench`), a published flow and an editor."""
    from django.contrib.auth.models import User

    from customers.models import Customer
    from flows.services import flow_create, flow_publish
    from triggers.models import ManualSend
    from workbench.models import Environment, Membership, Role

    environment, _ = Environment.objects.get_or_create(slug=ENVIRONMENT_SLUG, defaults={"name": "Benchmark dashboard"})
    environment.manual_send_limit = max(CUSTOMERS, 10_000)
    environment.save(update_fields=["manual_send_limit"])
    ManualSend.objects.filter(environment=environment).delete()
    empty_scratch_environment(environment)
    Customer.objects.bulk_create(
        [Customer(environment=environment, user_id=f"dash-{n:06d}", tags=["bench"]) for n in range(CUSTOMERS)],
        batch_size=2000,
    )
    flow = flow_create(
        environment=environment,
        name="Bench dashboard",
        variables=[{"name": "firstName", "default": "there"}],
        steps=[{"type": "send_card", "card": {"title": "Hi {{firstName}}", "body": "Spring sale.", "actions": []}}],
    )
    flow_publish(flow=flow)
    editor, _ = User.objects.get_or_create(username="bench-dashboard-editor")
    Membership.objects.get_or_create(user=editor, environment=environment, defaults={"role": Role.EDITOR})
    return environment, flow, editor


def click_send(flow: Any, editor: Any) -> int:
    """The editor's confirm POST, as the review dialog sends it; the send's id."""
    from django.conf import settings
    from django.test import Client

    from triggers.models import ManualSend

    # This process's own requests, on production settings without collected static files.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "127.0.0.1"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(editor)
    answer = client.post(
        f"/e/{ENVIRONMENT_SLUG}/triggers/send/confirm",
        {"source": "rules", "rules": json.dumps(RULES), "flow": str(flow.pk), "pick": "all"},
        secure=True,  # production settings redirect plain HTTP
    )
    if answer.status_code != 302:
        raise BenchError(f"The send was answered {answer.status_code}: {_refusal(answer.content.decode())}")
    return int(ManualSend.objects.filter(flow=flow).latest("pk").pk)


def wait_until_sent(send_id: int, flow_id: int) -> None:
    from flows.models import Invocation
    from triggers.models import ManualSend, ManualSendStatus

    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        send = ManualSend.objects.get(pk=send_id)
        if send.status in (ManualSendStatus.FAILED, ManualSendStatus.CANCELLED):
            raise BenchError(f"The send ended {send.status}: {send.last_error}")
        if send.status == ManualSendStatus.COMPLETED:
            if Invocation.objects.filter(flow_id=flow_id, source="dashboard").count() != CUSTOMERS:
                raise BenchError("The send completed without an invocation per customer")
            return
        time.sleep(0.05)
    raise BenchError(f"The send did not complete in {TIMEOUT_SECONDS} s")


def pipeline_seconds(flow: Any) -> float:
    """The reference: the same one-target starts straight into the pipeline."""
    from flows.models import Mode
    from flows.selectors import flow_for_start
    from flows.services import invocations_accept
    from flows.start_requests import StartRequest
    from triggers.manual_sends import CHUNK_SIZE

    start_flow = flow_for_start(flow=flow)
    user_ids = [f"dash-{n:06d}" for n in range(CUSTOMERS)]
    started = time.perf_counter()
    for index in range(0, len(user_ids), CHUNK_SIZE):
        chunk = user_ids[index : index + CHUNK_SIZE]
        starts = [StartRequest(target_user_ids=[user_id], flow_invocation_id=f"ref-{user_id}") for user_id in chunk]
        invocations_accept(flow=start_flow, mode=Mode.LIVE, starts=starts, source="bench")
    return time.perf_counter() - started


def run() -> list[Result]:
    from django.db import connection

    _environment, flow, editor = prepare()
    queue = new_queue("bench-dashboard")
    # Executing the runs is bench_fanout's subject: their messages wait in a queue nobody reads.
    env = service_environment(queue, CELERY_RUNS_QUEUE=f"{queue}-runs")
    os.environ["CELERY_QUEUE"] = queue  # this process's on_commit sends go to the bench worker
    from django.conf import settings

    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    from workbench.celery import app

    app.conf.task_default_queue = queue
    app.conf.task_routes = {"flows.execute_runs": {"queue": f"{queue}-runs"}}
    connection.close()
    try:
        with celery_worker(queue, 2, env):
            started = time.perf_counter()
            send_id = click_send(flow, editor)
            clicked = time.perf_counter() - started
            wait_until_sent(send_id, flow.pk)
            measured = time.perf_counter() - started
        reference = pipeline_seconds(flow)
    finally:
        drop_queue(queue)
        drop_queue(f"{queue}-runs")
    print(
        f"Dashboard send to {CUSTOMERS:,} customers: the click answered in {clicked:.2f} s, every start "
        f"accepted after {measured:.2f} s; the same starts straight into the pipeline: {reference:.2f} s"
    )
    return [
        Result(
            name=f"Dashboard send to {CUSTOMERS:,} customers ({measured:.1f} s from the click to every start accepted)",
            unit="starts/s",
            measured=CUSTOMERS / measured,
            reference=CUSTOMERS / reference,
            reference_name="the same starts straight into invocations_accept",
            goal=None,
        )
    ]


def _refusal(html: str) -> str:
    """The reason a refused send's page gives."""
    marker = 'id="send-refusal">'
    return html.split(marker, 1)[1].split("<", 1)[0] if marker in html else html[:300]
