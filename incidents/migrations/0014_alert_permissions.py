"""Who sees alerts and routes them: agents and managers see alerts and refused payloads (the
alerts behind the incidents they work); managers also edit the routing rules. Without this
only superusers could, as no seeded group had the new models' permissions."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

AGENT = "Service desk agent"
MANAGER = "Incident manager"
SEE = [
    ("incidents", "view_alert"),
    ("incidents", "view_alertgroup"),
    ("incidents", "view_rejectedpayload"),
    ("incidents", "view_alertrule"),
]
ROUTE = [
    ("incidents", "add_alertrule"),
    ("incidents", "change_alertrule"),
    ("incidents", "delete_alertrule"),
]


def _permissions(apps, pairs):
    Permission = apps.get_model("auth", "Permission")
    return [
        p
        for app_label, codename in pairs
        for p in Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    ]


def _group(apps, name):
    return apps.get_model("auth", "Group").objects.filter(name=name).first()


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    agent, manager = _group(apps, AGENT), _group(apps, MANAGER)
    if agent is not None:
        agent.permissions.add(*_permissions(apps, SEE))
    if manager is not None:
        manager.permissions.add(*_permissions(apps, SEE + ROUTE))


def revoke(apps, schema_editor):
    agent, manager = _group(apps, AGENT), _group(apps, MANAGER)
    if agent is not None:
        agent.permissions.remove(*_permissions(apps, SEE))
    if manager is not None:
        manager.permissions.remove(*_permissions(apps, SEE + ROUTE))


class Migration(migrations.Migration):
    dependencies = [("incidents", "0013_alerts_in")]

    operations = [migrations.RunPython(grant, revoke)]
