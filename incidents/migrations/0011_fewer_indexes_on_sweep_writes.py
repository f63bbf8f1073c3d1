# The SLA sweep writes thousands of signals and timeline events at once (issue 17, C2d): drop
# the indexes no query needs. Only the indexes go (DROP INDEX): Django's AlterField would also
# drop and re-validate the foreign keys, a full scan of both tables for nothing.
#   incidents_slasignal_incident_id_2c2ae3fc: unique_sla_signal (incident_id, target, threshold)
#     starts with the same column and serves every read by incident and the cascade.
#   incidents_incidentevent_incident_id_98972806: likewise incident_event_idx (incident_id, at).
#   incidents_incidentevent_actor_id_098f99cf: replaced by incident_event_actor_idx, partial on
#     actor_id IS NOT NULL (a user's deletion finds their events; system events stay out).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DROPPED = {
    "incidents_slasignal_incident_id_2c2ae3fc": ("incidents_slasignal", "incident_id"),
    "incidents_incidentevent_incident_id_98972806": ("incidents_incidentevent", "incident_id"),
    "incidents_incidentevent_actor_id_098f99cf": ("incidents_incidentevent", "actor_id"),
}


class Migration(migrations.Migration):

    dependencies = [
        ('incidents', '0010_event_version'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='incidentevent',
                    name='actor',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='actor'),
                ),
                migrations.AlterField(
                    model_name='incidentevent',
                    name='incident',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='events', to='incidents.incident', verbose_name='incident'),
                ),
                migrations.AlterField(
                    model_name='slasignal',
                    name='incident',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='sla_signals', to='incidents.incident'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f"DROP INDEX IF EXISTS {name}",
                    reverse_sql=f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})",
                )
                for name, (table, column) in DROPPED.items()
            ],
        ),
        migrations.AddIndex(
            model_name='incidentevent',
            index=models.Index(condition=models.Q(('actor__isnull', False)), fields=['actor'], name='incident_event_actor_idx'),
        ),
    ]
