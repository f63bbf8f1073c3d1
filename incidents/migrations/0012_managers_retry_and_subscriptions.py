"""Incident managers may retry failed notifications and manage customer subscriptions.

Both need a permission no seeded group had (``notifications.change_notification``,
``services.*_subscription``), so only superusers could retry a message or see a webhook's
signing secret. Managers get them; agents and the read-only group do not.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MANAGER = "Incident manager"
PERMISSIONS = [
    ("notifications", "change_notification"),
    ("services", "view_subscription"),
    ("services", "add_subscription"),
    ("services", "change_subscription"),
    ("services", "delete_subscription"),
]


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    manager = Group.objects.filter(name=MANAGER).first()
    if manager is None:
        return
    for app_label, codename in PERMISSIONS:
        manager.permissions.add(
            *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    manager = Group.objects.filter(name=MANAGER).first()
    if manager is None:
        return
    for app_label, codename in PERMISSIONS:
        manager.permissions.remove(
            *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0011_fewer_indexes_on_sweep_writes"),
        ("notifications", "0009_worker_deaths"),
        ("services", "0006_webhook_endpoint_secret"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
