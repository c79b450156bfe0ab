"""gunicorn's settings for `gunicorn workbench.wsgi`, read from the working directory.

gunicorn loads ./gunicorn.conf.py by itself when it is started from the repository root (as the
README's "Production" section does); command-line flags still win over these values.

Only what differs from gunicorn's defaults for a reason is set here; timeouts, workers and
threads stay gunicorn's defaults, tuned per deployment by flags or GUNICORN_CMD_ARGS.

Errors gunicorn answers itself (request line or headers too large, malformed requests) are
JSON through the worker class below, like every other error of the service (SPEC section 3).

A proxy in front answers oversized requests itself, in its own HTML, when its limits are
lower than gunicorn's. Give it at least these limits so that gunicorn (and then Django) answers:
for nginx, `large_client_header_buffers 4 16k;` (its 8k default is below the header field
limit below) and `client_max_body_size 129m;` (CSV uploads reach 128 MiB and Django answers 413
in JSON above that).
"""

from __future__ import annotations

worker_class = "workbench.gunicorn_worker.JsonErrorThreadWorker"

# gunicorn's own defaults, written down because the API promises them: a URL longer than
# about 4 KB answers 414, a header field over 8 KB or more than 100 fields answer 431.
# Nothing the Workbench or the API sends comes close.
limit_request_line = 4094
limit_request_field_size = 8190
limit_request_fields = 100


def post_worker_init(worker: object) -> None:
    """Once a worker has loaded the project, take what is loaded out of the garbage collector's
    scans (gc.freeze): the modules, URL patterns and settings live as long as the process.

    Without it, each full collection walked about 157,000 long-lived objects, a pause of some
    80 ms with the GIL held (every thread of the worker waits) about once per 2,000 webhooks;
    frozen, a full collection walks only what requests made. The URL patterns are loaded
    first (Django imports the views with them, at the first request otherwise), so that they
    are frozen too.
    """
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 (loads the URL modules and the views they import)
    gc.freeze()
