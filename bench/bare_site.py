"""Settings of the server the start benchmark measures: the product's, plus bench-only URLs.

The same gunicorn processes serve the real start endpoint and the reference, a bare DRF
endpoint (`bench.bare_urls`), so that both sides of the ratio pay for the same server,
middleware and JSON parsing.
"""

from __future__ import annotations

from workbench.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
