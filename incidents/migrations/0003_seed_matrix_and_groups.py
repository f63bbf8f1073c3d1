"""Seed the default priority matrix and the three staff groups with their permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

DEFAULT_PRIORITY_MATRIX = {
    (1, 1): 1, (1, 2): 2, (2, 1): 2, (1, 3): 3, (2, 2): 3,
    (3, 1): 3, (2, 3): 4, (3, 2): 4, (3, 3): 5,
}

AGENT = "Service desk agent"
MANAGER = "Incident manager"
READ_ONLY = "Read only"

AGENT_PERMS = [
    ("incidents", "view_incident"), ("incidents", "change_incident"),
    ("incidents", "add_incident"), ("incidents", "work_incident"),
    ("incidents", "view_incidentupdate"), ("incidents", "add_incidentupdate"),
    ("incidents", "view_incidentevent"), ("incidents", "view_incidentservice"),
    ("incidents", "add_incidentservice"), ("incidents", "change_incidentservice"),
    ("incidents", "delete_incidentservice"),
    ("incidents", "view_prioritymatrixentry"),
    ("services", "view_service"), ("services", "view_organization"),
    ("services", "view_contact"), ("services", "view_maintenancewindow"),
    ("services", "view_slapolicy"), ("problems", "view_problem"),
    ("notifications", "view_notification"), ("notifications", "view_notificationevent"),
]
MANAGER_EXTRA_MODELS = [
    ("incidents", ["incident", "incidentupdate", "incidentservice", "prioritymatrixentry",
                   "incidentevent", "incidentpause", "slasignal"]),
    ("services", ["slapolicy", "slatarget", "businesscalendar", "businesshours", "holiday",
                  "contract"]),
]


def seed(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Entry = apps.get_model("incidents", "PriorityMatrixEntry")
    for (impact, urgency), priority in DEFAULT_PRIORITY_MATRIX.items():
        Entry.objects.get_or_create(
            impact=impact, urgency=urgency, defaults={"priority": priority}
        )

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")

    def perms(pairs):
        found = []
        for app_label, codename in pairs:
            found.extend(
                Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )
        return found

    agent, _ = Group.objects.get_or_create(name=AGENT)
    agent.permissions.add(*perms(AGENT_PERMS))

    manager, _ = Group.objects.get_or_create(name=MANAGER)
    manager_pairs = list(AGENT_PERMS)
    for app_label, models in MANAGER_EXTRA_MODELS:
        for model in models:
            for action in ("add", "change", "delete", "view"):
                manager_pairs.append((app_label, f"{action}_{model}"))
    manager.permissions.add(*perms(manager_pairs))

    read_only, _ = Group.objects.get_or_create(name=READ_ONLY)
    read_only.permissions.add(
        *Permission.objects.filter(
            codename__startswith="view_",
            content_type__app_label__in=["incidents", "services", "problems", "notifications"],
        )
    )


def unseed(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=[AGENT, MANAGER, READ_ONLY]).delete()
    apps.get_model("incidents", "PriorityMatrixEntry").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0002_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("services", "0001_initial"),
        ("problems", "0001_initial"),
        ("notifications", "0001_initial"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
