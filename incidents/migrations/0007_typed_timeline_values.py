"""Timeline values as typed data: a person, group, service or problem named by a display
string or a bare id becomes {"id": …, "label": …}; services changed and created with a list of
{"id", "label", "status"}. Values that no longer match a row keep their label with id None."""

from django.db import migrations

PEOPLE_FIELDS = ("assignee", "commander", "communications_lead")


class Lookup:
    def __init__(self, apps):
        self.users = dict(
            (u, pk) for pk, u in apps.get_model("auth", "User").objects.values_list("pk", "username")
        )
        self.groups = dict(
            (n, pk) for pk, n in apps.get_model("auth", "Group").objects.values_list("pk", "name")
        )
        self.services = dict(apps.get_model("services", "Service").objects.values_list("pk", "name"))
        self.organizations = dict(
            (n, pk)
            for pk, n in apps.get_model("services", "Organization").objects.values_list("pk", "name")
        )
        self.problems = {
            pk: f"PRB-{pk:06d} {title}"
            for pk, title in apps.get_model("problems", "Problem").objects.values_list("pk", "title")
        }

    @staticmethod
    def by_label(label, ids):
        if label is None or isinstance(label, dict):
            return label
        return {"id": ids.get(label), "label": label}

    def problem(self, value):
        if value is None or isinstance(value, dict):
            return value
        return {"id": value, "label": self.problems.get(value, f"PRB-{value:06d}")}

    def services_list(self, value, statuses):
        if isinstance(value, dict):  # {"<id>": status}
            items = [(int(k), v) for k, v in value.items()]
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            items = [(pk, statuses.get(pk)) for pk in value]
        else:
            return value
        found = [
            {"id": pk, "label": self.services.get(pk, str(pk)), "status": status}
            for pk, status in items
        ]
        return sorted(found, key=lambda v: (v["label"], v["id"]))


def convert(event, lookup, statuses):
    old, new = event.old_value, event.new_value
    if event.kind == "created" and isinstance(new, dict):
        new = {
            **new,
            "services": lookup.services_list(new.get("services", []), statuses),
            "assignee": lookup.by_label(new.get("assignee"), lookup.users),
        }
    elif event.kind == "assigned":
        old, new = (
            {
                "assignee": lookup.by_label((v or {}).get("assignee"), lookup.users),
                "group": lookup.by_label((v or {}).get("group"), lookup.groups),
            }
            for v in (old, new)
        )
    elif event.kind == "services_changed":
        old, new = (lookup.services_list(v, {}) for v in (old, new))
    elif event.kind == "problem_linked":
        old, new = lookup.problem(old), lookup.problem(new)
    elif event.kind == "edited":
        old, new = (edited(v, lookup) for v in (old, new))
    changed = (old, new) != (event.old_value, event.new_value)
    event.old_value, event.new_value = old, new
    return changed


def edited(value, lookup):
    if not isinstance(value, dict):
        return value
    value = dict(value)
    for field in PEOPLE_FIELDS:
        if field in value:
            value[field] = lookup.by_label(value[field], lookup.users)
    if "organization" in value:
        value["organization"] = lookup.by_label(value["organization"], lookup.organizations)
    if "contact" in value:  # "Name <email>": the id is not recoverable from the label alone
        value["contact"] = lookup.by_label(value["contact"], {})
    return value


def forwards(apps, schema_editor):
    IncidentEvent = apps.get_model("incidents", "IncidentEvent")
    IncidentService = apps.get_model("incidents", "IncidentService")
    lookup = Lookup(apps)
    statuses = {}
    for incident_id, service_id, status in IncidentService.objects.values_list(
        "incident_id", "service_id", "status"
    ):
        statuses.setdefault(incident_id, {})[service_id] = status
    events = IncidentEvent.objects.filter(
        kind__in=["created", "assigned", "services_changed", "problem_linked", "edited"]
    )
    batch = []
    for event in events.iterator(chunk_size=2000):
        if convert(event, lookup, statuses.get(event.incident_id, {})):
            batch.append(event)
        if len(batch) >= 1000:
            IncidentEvent.objects.bulk_update(batch, ["old_value", "new_value"])
            batch = []
    IncidentEvent.objects.bulk_update(batch, ["old_value", "new_value"])


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("incidents", "0006_responded_first_resolved_explain"),
        ("problems", "0001_initial"),
        ("services", "0004_history"),
    ]

    # Backwards leaves the typed values: the older code displays them as text.
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
