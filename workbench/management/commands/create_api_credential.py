from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from workbench.models import CredentialRole, Environment
from workbench.services import credential_create


class Command(BaseCommand):
    help = 'Issue an API credential and print {"clientId": ..., "clientSecret": ...} as JSON.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--environment", required=True, help="the environment's slug")
        parser.add_argument("--role", required=True, choices=CredentialRole.values)
        parser.add_argument("--label", default="")

    def handle(self, *args: Any, environment: str, role: str, label: str, **options: Any) -> None:
        env = Environment.objects.filter(slug=environment).first()
        if env is None:
            raise CommandError(f"No environment with slug {environment!r}.")
        issued = credential_create(environment=env, role=role, label=label)
        self.stdout.write(json.dumps({"clientId": issued.credential.client_id, "clientSecret": issued.client_secret}))
