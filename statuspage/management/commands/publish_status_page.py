"""Publish the public side now (what ``statuspage.publish`` does in a worker)."""

from django.core.management.base import BaseCommand

from statuspage.publish import publish
from statuspage.rollup import HISTORY_DAYS, roll_up_recent


class Command(BaseCommand):
    help = "Roll up the uptime days and publish every public page, JSON document and feed."

    def add_arguments(self, parser):
        parser.add_argument(
            "--quick",
            action="store_true",
            help="Render only what changed since the last publish (default: everything).",
        )

    def handle(self, *args, **options):
        if not options["quick"]:
            roll_up_recent(days=HISTORY_DAYS)
        changed = publish(full=not options["quick"])
        if options["verbosity"]:
            self.stdout.write(self.style.SUCCESS(f"Published: {changed} outputs changed."))
