"""``manage.py ensure_admin``: the first superuser, created once and never changed after."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Create the superuser 'admin' if it does not exist. The password comes from "
        "ITSM_ADMIN_PASSWORD; without it one is generated and printed once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")
        parser.add_argument("--email", default="admin@itsm.localhost")

    def handle(self, *args, username, email, **options):
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            if options["verbosity"]:
                self.stdout.write(f"Superuser {username!r} exists; left unchanged.")
            return
        password = os.environ.get("ITSM_ADMIN_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        else:
            # The same validators (AUTH_PASSWORD_VALIDATORS) as the admin's password forms.
            try:
                validate_password(password, User(username=username, email=email))
            except ValidationError as error:
                raise CommandError(
                    "ITSM_ADMIN_PASSWORD is refused: " + " ".join(error.messages)
                ) from None
        User.objects.create_superuser(username=username, email=email, password=password)
        if generated:
            # Printed whatever the verbosity: this is the only time anyone can see it.
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created superuser {username!r} with password: {password}\n"
                    "It is not stored anywhere else; change it in the admin once signed in."
                )
            )
        elif options["verbosity"]:
            self.stdout.write(
                self.style.SUCCESS(f"Created superuser {username!r} (ITSM_ADMIN_PASSWORD).")
            )
