"""The old ``open`` state is ``new`` now; seed the "Problem manager" group, who works problems,
reads incidents and links them (and resolves the linked ones when a problem is fixed)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PROBLEM_MANAGER = "Problem manager"
INCIDENT_MANAGER = "Incident manager"
AGENT = "Service desk agent"

PROBLEM_MANAGER_PERMS = [
    *(("problems", f"{a}_problem") for a in ("add", "change", "delete", "view")),
    ("problems", "work_problem"),
    ("problems", "view_problemevent"),
    ("problems", "view_recurrenceproposal"),
    ("problems", "change_recurrenceproposal"),
    ("incidents", "view_incident"),
    ("incidents", "change_incident"),
    ("incidents", "work_incident"),
    ("incidents", "view_incidentupdate"),
    ("incidents", "view_incidentevent"),
    ("incidents", "view_incidentservice"),
    ("services", "view_service"),
    ("services", "view_team"),
]
# Agents see the problem timeline (they already see problems) to quote a known error.
AGENT_PERMS = [("problems", "view_problemevent")]


def _permissions(apps, pairs):
    Permission = apps.get_model("auth", "Permission")
    return [
        p
        for app_label, codename in pairs
        for p in Permission.objects.filter(content_type__app_label=app_label, codename=codename)
    ]


def forwards(apps, schema_editor):
    apps.get_model("problems", "Problem").objects.filter(state="open").update(state="new")
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    seed(apps, schema_editor)


def seed(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    manager, _ = Group.objects.get_or_create(name=PROBLEM_MANAGER)
    manager.permissions.add(*_permissions(apps, PROBLEM_MANAGER_PERMS))
    incident_manager = Group.objects.filter(name=INCIDENT_MANAGER).first()
    if incident_manager is not None:
        incident_manager.permissions.add(*_permissions(apps, PROBLEM_MANAGER_PERMS[:7]))
    agent = Group.objects.filter(name=AGENT).first()
    if agent is not None:
        agent.permissions.add(*_permissions(apps, AGENT_PERMS))


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=PROBLEM_MANAGER).delete()
    apps.get_model("problems", "Problem").objects.filter(
        state__in=["new", "investigating"]
    ).update(state="open")


class Migration(migrations.Migration):
    dependencies = [
        ("problems", "0002_problem_management"),
        ("incidents", "0003_seed_matrix_and_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
