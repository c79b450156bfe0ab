from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.services import environment_create


class Command(BaseCommand):
    help = 'Create an environment and print {"slug": ..., "name": ...} as JSON.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)

    def handle(self, *args: Any, slug: str, name: str, **options: Any) -> None:
        try:
            environment = environment_create(slug=slug, name=name)
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())) from None
        self.stdout.write(json.dumps({"slug": environment.slug, "name": environment.name}))
