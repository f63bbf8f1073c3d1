"""Confidential incidents and typed actors on the timeline.

Fills the actor of existing events (a user: kind "user" with their username and id; none: the
system), creates the permission to see and mark confidential incidents, and seeds the
"Security" group (an agent's permissions plus that one); incident managers get it too.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.functions import Cast

SECURITY = "Security"
MANAGER = "Incident manager"
AGENT = "Service desk agent"


def fill_actors(apps, schema_editor):
    Event = apps.get_model("incidents", "IncidentEvent")
    User = apps.get_model("auth", "User")
    Event.objects.filter(actor__isnull=False).update(
        actor_kind="user",
        actor_label=Subquery(User.objects.filter(pk=OuterRef("actor_id")).values("username")[:1]),
        actor_ref=Cast("actor_id", output_field=CharField()),
    )
    Event.objects.filter(actor__isnull=True).update(actor_kind="system", actor_label="system")


def seed_security(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    confidential = Permission.objects.get(
        content_type__app_label="incidents", codename="access_confidential"
    )
    security, _ = Group.objects.get_or_create(name=SECURITY)
    agent = Group.objects.filter(name=AGENT).first()
    if agent is not None:
        security.permissions.add(*agent.permissions.all())
    security.permissions.add(confidential)
    for manager in Group.objects.filter(name=MANAGER):
        manager.permissions.add(confidential)


def unseed_security(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=SECURITY).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0008_recompute_open_deadlines"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="incident",
            options={
                "ordering": ["priority", "resolve_due_at"],
                "permissions": [
                    ("work_incident", "Can work incidents (transitions)"),
                    ("access_confidential", "Can see and mark confidential incidents"),
                ],
                "verbose_name": "incident",
                "verbose_name_plural": "incidents",
            },
        ),
        migrations.AddField(
            model_name="incident",
            name="is_confidential",
            field=models.BooleanField(
                default=False,
                help_text="Seen only by the Security group, incident managers, its assignee and its commander; it does not move a public service status and tells customers nothing unless a public update is posted, which then names no detail.",
                verbose_name="confidential",
            ),
        ),
        migrations.AddField(
            model_name="incidentevent",
            name="actor_kind",
            field=models.CharField(
                choices=[
                    ("user", "user"),
                    ("token", "API token"),
                    ("integration", "integration"),
                    ("system", "system"),
                ],
                default="system",
                max_length=16,
                verbose_name="actor kind",
            ),
        ),
        migrations.AddField(
            model_name="incidentevent",
            name="actor_label",
            field=models.CharField(blank=True, max_length=150, verbose_name="actor label"),
        ),
        migrations.AddField(
            model_name="incidentevent",
            name="actor_ref",
            field=models.CharField(blank=True, max_length=64, verbose_name="actor reference"),
        ),
        migrations.RunPython(fill_actors, migrations.RunPython.noop),
        migrations.RunPython(seed_security, unseed_security),
    ]
