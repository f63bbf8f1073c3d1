"""``manage.py create_api_token NAME --scope SCOPE [--organization SLUG] [--expires-in-days N]``:
issue a token for a script and print its secret (shown this once)."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from itsm import tokens
from itsm.models import TokenScope
from services.models import Organization


class Command(BaseCommand):
    help = "Issue an API token and print its secret (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            choices=TokenScope.values,
            help="repeat for several scopes",
        )
        parser.add_argument("--organization", help="slug of the customer organisation to bind")
        parser.add_argument("--expires-in-days", type=int, help="the token stops working after")

    def handle(self, *args, name, scope, organization=None, expires_in_days=None, **options):
        org = None
        if organization:
            org = Organization.objects.filter(slug=organization).first()
            if org is None:
                raise CommandError(f"No organisation with the slug {organization!r}.")
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days <= 0:
                raise CommandError("--expires-in-days must be a positive number of days.")
            expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
        try:
            _token, secret = tokens.issue(
                name=name, scopes=scope, organization=org, expires_at=expires_at
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(secret)
