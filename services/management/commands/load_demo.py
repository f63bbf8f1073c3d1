"""``manage.py load_demo``: the demo catalog, then the incident history if that app has one."""

import importlib

from django.core.management.base import BaseCommand
from tqdm import tqdm

from services import demo as catalog_demo


def _incident_demo():
    """``incidents.demo`` when it exists. Only a missing module is tolerated: an import error
    inside it is a bug and must surface."""
    try:
        return importlib.import_module("incidents.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "incidents.demo":
            raise
        return None


class Command(BaseCommand):
    help = "Load demo data (services, customers, SLA policies, incidents). Safe to run twice."

    def handle(self, *args, **options):
        incident_demo = _incident_demo()
        total = len(catalog_demo.STEPS) + len(getattr(incident_demo, "STEPS", ()))
        with tqdm(
            total=total, unit="step", disable=options["verbosity"] == 0, file=self.stderr._out
        ) as progress:
            catalog = catalog_demo.load_catalog_demo(progress)
            if incident_demo is not None:
                incident_demo.load_incident_demo(catalog, progress)
        if options["verbosity"]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Demo data loaded: {len(catalog.services)} services, "
                    f"{len(catalog.organizations)} organisations, "
                    f"{len(catalog.contacts)} contacts."
                )
            )
