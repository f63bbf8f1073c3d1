# Notifications name their subject generically (kind + id) instead of holding foreign keys to
# incidents.Incident and services.MaintenanceWindow: notifications know no other app (issue 16
# §3). Existing events keep their subject: the foreign-key values are copied before the columns
# go, and reversing copies them back.

from django.db import migrations, models
from django.db.models import F


def copy_subjects(apps, schema_editor):
    Event = apps.get_model("notifications", "NotificationEvent")
    Event.objects.filter(incident__isnull=False).update(
        subject_kind="incident", subject_id=F("incident_id")
    )
    Event.objects.filter(maintenance__isnull=False).update(
        subject_kind="maintenance", subject_id=F("maintenance_id")
    )


def restore_foreign_keys(apps, schema_editor):
    Event = apps.get_model("notifications", "NotificationEvent")
    Event.objects.filter(subject_kind="incident").update(incident_id=F("subject_id"))
    Event.objects.filter(subject_kind="maintenance").update(maintenance_id=F("subject_id"))


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0006_delivery_semantics"),
        # The foreign keys being removed point at these; their tables must still exist.
        ("incidents", "0001_initial"),
        ("services", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="notificationevent",
            name="subject_kind",
            field=models.CharField(
                blank=True, default="", max_length=32, verbose_name="subject kind"
            ),
        ),
        migrations.AddField(
            model_name="notificationevent",
            name="subject_id",
            field=models.BigIntegerField(blank=True, null=True, verbose_name="subject id"),
        ),
        migrations.RunPython(copy_subjects, restore_foreign_keys),
        migrations.RemoveField(model_name="notificationevent", name="incident"),
        migrations.RemoveField(model_name="notificationevent", name="maintenance"),
        migrations.AddIndex(
            model_name="notificationevent",
            index=models.Index(fields=["subject_kind", "subject_id"], name="event_subject_idx"),
        ),
    ]
