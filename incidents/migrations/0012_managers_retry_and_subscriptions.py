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


def _manager_and_permissions(apps):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    found = [
        p
        for app_label, codename in PERMISSIONS
        for p in Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    ]
    return Group.objects.filter(name=MANAGER).first(), found


def grant(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    manager, permissions = _manager_and_permissions(apps)
    if manager is not None:
        manager.permissions.add(*permissions)


def revoke(apps, schema_editor):
    manager, permissions = _manager_and_permissions(apps)
    if manager is not None:
        manager.permissions.remove(*permissions)


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0011_fewer_indexes_on_sweep_writes"),
        ("notifications", "0009_worker_deaths"),
        ("services", "0006_webhook_endpoint_secret"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
