"""Open incidents were given their deadlines by the old rules (one policy for both targets,
chosen by shortest resolution time, on its calendar; a hold emptied them). Mark them stale and
due now, so the first sweep recomputes each from its history by SLA.md's "Which deadlines an
incident gets" and writes the move on its timeline."""

from django.db import migrations
from django.db.models.functions import Now

OPEN_STATES = ["new", "acknowledged", "on_hold"]


def mark_open_incidents_stale(apps, schema_editor):
    Incident = apps.get_model("incidents", "Incident")
    Incident.objects.filter(state__in=OPEN_STATES).update(sla_stale=True, next_sla_check_at=Now())


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0007_typed_timeline_values"),
    ]

    operations = [
        migrations.RunPython(mark_open_incidents_stale, migrations.RunPython.noop),
    ]
