"""Chunked request bodies under gunicorn: buffered, so Django reads them at all.

A request sent with `Transfer-Encoding: chunked` has no Content-Length. Gunicorn decodes the
chunks and marks the input as terminated (`wsgi.input_terminated`, so reading to its end is
safe), but Django sizes every body by CONTENT_LENGTH and reads a missing one as empty: the
start and the webhook answered "not JSON". This WSGI middleware reads such a body first, up
to one byte past the path's limit (spooled to a temporary file past 1 MiB, so a large upload
never sits whole in memory), and hands Django the buffered input with its length. A body
over the limit then meets the same Content-Length check as any other: 413
payload_too_large from `ApiGuardMiddleware`, before anything parses it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from typing import IO, Any

from django.conf import settings

from .middleware import body_limit_for

WSGIApplication = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

READ_SIZE = 64 * 1024
IN_MEMORY_BYTES = 1024 * 1024


class ChunkedBodyMiddleware:
    def __init__(self, application: WSGIApplication):
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if _has_unsized_body(environ):
            limit = body_limit_for(environ.get("PATH_INFO", "")) or settings.CSV_MAX_BODY_BYTES
            buffered, length = _buffer(environ["wsgi.input"], limit + 1)
            environ["wsgi.input"] = buffered
            environ["CONTENT_LENGTH"] = str(length)
        return self.application(environ, start_response)


def _has_unsized_body(environ: dict[str, Any]) -> bool:
    return (
        not environ.get("CONTENT_LENGTH")
        and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        and bool(environ.get("wsgi.input_terminated"))  # the server ends the input with the body
    )


def _buffer(stream: IO[bytes], at_most: int) -> tuple[IO[bytes], int]:
    """At most `at_most` bytes of `stream` in a rewound file, and how many there were."""
    buffered: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BYTES)  # noqa: SIM115 - Django reads it
    length = 0
    while length < at_most and (chunk := stream.read(min(READ_SIZE, at_most - length))):
        buffered.write(chunk)
        length += len(chunk)
    buffered.seek(0)
    return buffered, length
