from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from .chunked_bodies import ChunkedBodyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")

application = ChunkedBodyMiddleware(get_wsgi_application())
