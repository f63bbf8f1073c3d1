"""``manage.py load_demo``: the demo catalog, then the incident history.

Here, in incidents, because it needs both demos: incidents know the catalog, the catalog knows
no incident (issue 16 §3)."""

from django.core.management.base import BaseCommand
from tqdm import tqdm

from incidents import demo as incident_demo
from services import demo as catalog_demo


class Command(BaseCommand):
    help = "Load demo data (services, customers, SLA policies, incidents). Safe to run twice."

    def handle(self, *args, **options):
        total = len(catalog_demo.STEPS) + len(incident_demo.STEPS)
        with tqdm(
            total=total, unit="step", disable=options["verbosity"] == 0, file=self.stderr._out
        ) as progress:
            catalog = catalog_demo.load_catalog_demo(progress)
            incident_demo.load_incident_demo(catalog, progress)
        if options["verbosity"]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data loaded: {len(catalog.services)} services, "
                    f"{len(catalog.organizations)} organisations, "
                    f"{len(catalog.contacts)} contacts."
                )
            )
