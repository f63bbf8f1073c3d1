"""Atlassian Statuspage's public v2 API, built from the public read model.

``payloads(page)`` returns every document clients fetch under ``/api/v2/`` as plain dicts;
the caller serialises them. Everything is read through ``statuspage.public`` (only public
services, published non-confidential incidents with their public updates, maintenance not
cancelled), in a fixed number of queries whatever the number of incidents and services.

What Statuspage writes, as seen in recorded responses (the copies we test against are in
``tests/statuspage/statuspage_examples/``):

- Timestamps are ISO 8601 with milliseconds, in the page's time zone, ``Z`` for a UTC page:
  cloudflarestatus.com (time_zone "Etc/UTC") writes ``"2026-05-17T02:50:03.552Z"``;
  discordstatus.com ("America/Tijuana") writes ``"2022-02-15T13:37:37.407-08:00"``.
  ``start_date`` is a plain date or null.
- A group is a component with ``"group": true`` and the ids of its children in
  ``components``; a child has ``group_id``; a component outside a group has neither
  (``group_id`` null and no ``components`` key). ``position`` counts from 1 within the
  container (the page, or the group).
- An incident update whose components did not move carries ``"affected_components": null``
  (status.myemma.com's incidents); ``custom_tweet`` and ``tweet_id`` are null without Twitter.
- ``status.description`` blends the component statuses: "Partially Degraded Service" when
  some components are degraded (githubstatus.com, status.supabase.com with one degraded
  component, indicator minor), "Minor Service Outage" with some in partial outage
  (cloudflarestatus.com, indicator minor), "Partial System Outage" with some in major outage,
  "Major System Outage" when all are, "Service Under Maintenance" (indicator "maintenance",
  which Statuspage widgets test for besides none/minor/major/critical).
"""

import datetime as dt
import zoneinfo

from django.utils import timezone
from django.utils.translation import gettext as _

from incidents.models import OPEN_STATES, PublicStatus
from services.models import STATUS_SEVERITY, MaintenanceStatus, ServiceStatus
from statuspage import public

RECENT = 50  # Statuspage's incidents.json and scheduled-maintenances.json hold the 50 latest.

# Incident impact from the worst status it caused on a public service.
IMPACT_OF_STATUS = {
    ServiceStatus.DEGRADED_PERFORMANCE: "minor",
    ServiceStatus.PARTIAL_OUTAGE: "major",
    ServiceStatus.MAJOR_OUTAGE: "critical",
}
IMPACT_RANK = {"none": 0, "minor": 1, "major": 2, "critical": 3}

UTC_ZONES = frozenset({"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"})


def timestamp(value, time_zone):
    """``value`` (aware) as Statuspage writes it: milliseconds, the page's offset, Z in UTC."""
    if value is None:
        return None
    if time_zone in UTC_ZONES:
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return value.astimezone(zoneinfo.ZoneInfo(time_zone)).isoformat(timespec="milliseconds")


def page_status(statuses):
    """Statuspage's ``status`` object for the current statuses of the public components."""
    statuses = list(statuses)
    worst = public.overall_status(statuses)
    everywhere = bool(statuses) and all(s == worst for s in statuses)
    if worst == ServiceStatus.OPERATIONAL:
        return {"indicator": "none", "description": _("All Systems Operational")}
    if worst == ServiceStatus.UNDER_MAINTENANCE:
        return {"indicator": "maintenance", "description": _("Service Under Maintenance")}
    if worst == ServiceStatus.DEGRADED_PERFORMANCE:
        if everywhere:
            return {"indicator": "minor", "description": _("Degraded System Service")}
        return {"indicator": "minor", "description": _("Partially Degraded Service")}
    if worst == ServiceStatus.PARTIAL_OUTAGE:
        if everywhere:
            return {"indicator": "major", "description": _("Partial System Outage")}
        return {"indicator": "minor", "description": _("Minor Service Outage")}
    if everywhere:
        return {"indicator": "critical", "description": _("Major System Outage")}
    return {"indicator": "major", "description": _("Partial System Outage")}


def incident_impact(statuses):
    """none|minor|major|critical from the statuses an incident caused on public services."""
    impacts = [IMPACT_OF_STATUS.get(s, "none") for s in statuses]
    return max(impacts, key=IMPACT_RANK.__getitem__, default="none")


class _Builder:
    def __init__(self, page):
        self.page = {
            "id": page["id"],
            "name": page["name"],
            "url": page["url"].rstrip("/"),
            "time_zone": page["time_zone"],
        }
        self.page_dict = {**self.page, "updated_at": self.ts(page["updated_at"])}

    def ts(self, value):
        return timestamp(value, self.page["time_zone"])

    # Components ----------------------------------------------------------------------------

    def components(self, services):
        """Groups and services in page order, each group followed by its children; also
        ``self.component_of``: service pk → its component dict (for incidents)."""
        out, self.component_of = [], {}
        groups = {}  # group pk → its component, in page order
        top_position = 0
        for service in services:
            group_dict = None
            if service.group_id is not None:
                group_dict = groups.get(service.group_id)
                if group_dict is None:
                    top_position += 1
                    group_dict = groups[service.group_id] = self._group(service, top_position)
                    out.append(group_dict)
                position = len(group_dict["components"]) + 1
            else:
                top_position += 1
                position = top_position
            component = self._service(service, position, group_dict)
            self.component_of[service.pk] = component
            if group_dict is not None:
                group_dict["components"].append(component["id"])
                self._widen_group(group_dict, service)
            # public_services() orders by group, so a group's children follow it.
            out.append(component)
        return out

    def _service(self, service, position, group_dict):
        return {
            "id": f"svc-{service.pk}",
            "name": service.name,
            "status": service.status,
            "created_at": self.ts(service.created_at),
            "updated_at": self.ts(service.updated_at),
            "position": position,
            "description": service.description or None,
            # Our page shows every public service's 90-day uptime bar: Statuspage's showcase.
            "showcase": True,
            "start_date": self._local_date(service.created_at),
            "group_id": group_dict["id"] if group_dict else None,
            "page_id": self.page["id"],
            "group": False,
            "only_show_if_degraded": False,
        }

    def _group(self, service, position):
        return {
            "id": f"grp-{service.group_id}",
            "name": service.group.name,
            "status": service.status,
            # A group has no dates of its own: those of its public services stand in.
            "created_at": self.ts(service.created_at),
            "updated_at": self.ts(service.updated_at),
            "position": position,
            "description": None,
            "showcase": False,
            "start_date": None,
            "group_id": None,
            "page_id": self.page["id"],
            "group": True,
            "only_show_if_degraded": False,
            "components": [],
            "_created": service.created_at,
            "_updated": service.updated_at,
        }

    def _widen_group(self, group_dict, service):
        # A group shows the worst status of its components, as Statuspage's does.
        if STATUS_SEVERITY[service.status] > STATUS_SEVERITY[group_dict["status"]]:
            group_dict["status"] = service.status
        if service.created_at < group_dict["_created"]:
            group_dict["_created"] = service.created_at
            group_dict["created_at"] = self.ts(service.created_at)
        if service.updated_at > group_dict["_updated"]:
            group_dict["_updated"] = service.updated_at
            group_dict["updated_at"] = self.ts(service.updated_at)

    def _local_date(self, value):
        zone = self.page["time_zone"]
        local = value.astimezone(dt.UTC if zone in UTC_ZONES else zoneinfo.ZoneInfo(zone))
        return local.date().isoformat()

    # Incidents -----------------------------------------------------------------------------

    def incident(self, incident, caused):
        incident_id = f"inc-{incident.pk}"
        is_open = incident.state in OPEN_STATES
        status = str(incident.public_status or PublicStatus.INVESTIGATING)
        if not is_open:
            status = str(PublicStatus.RESOLVED)
        updates = [self._update(u, incident_id, status) for u in incident.public_updates]
        monitoring = [
            u.created_at for u in incident.public_updates if u.public_status == "monitoring"
        ]
        # Only public moments: internal edits also move ``Incident.updated_at``.
        moments = [incident.published_at, *(u.created_at for u in incident.public_updates)]
        resolved_at = None if is_open else incident.resolved_at
        return {
            "id": incident_id,
            "name": incident.title,
            "status": status,
            "created_at": self.ts(incident.published_at),
            "updated_at": self.ts(max(m for m in [*moments, resolved_at] if m)),
            "monitoring_at": self.ts(min(monitoring)) if monitoring else None,
            "resolved_at": self.ts(resolved_at),
            "impact": incident_impact(caused.get(incident.pk, ())),
            "shortlink": f"{self.page['url']}/incidents/{incident.pk}/",
            "started_at": self.ts(incident.opened_at),
            "page_id": self.page["id"],
            "incident_updates": updates,
            # A service made public after the services were read is left out, not an error.
            "components": [
                self.component_of[s.pk]
                for s in incident.public_services
                if s.pk in self.component_of
            ],
            "reminder_intervals": None,
        }

    def _update(self, update, incident_id, incident_status):
        at = self.ts(update.created_at)
        return {
            "id": f"upd-{update.pk}",
            "status": update.public_status or incident_status,
            "body": update.body,
            "incident_id": incident_id,
            "created_at": at,
            "updated_at": at,
            "display_at": at,
            "affected_components": None,
            "deliver_notifications": True,
            "custom_tweet": None,
            "tweet_id": None,
        }

    # Maintenance ---------------------------------------------------------------------------

    def maintenance(self, window, times):
        window_id = f"mnt-{window.pk}"
        began, ended = times.get(window.pk, (None, None))
        steps = [(MaintenanceStatus.SCHEDULED, window.created_at, window.public_description)]
        if window.status in (MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.COMPLETED):
            steps.append(
                (
                    MaintenanceStatus.IN_PROGRESS,
                    began or window.scheduled_start,
                    _(
                        "Scheduled maintenance is currently in progress. We will provide "
                        "updates as necessary."
                    ),
                )
            )
        resolved_at = None
        if window.status == MaintenanceStatus.COMPLETED:
            resolved_at = ended or window.scheduled_end
            steps.append(
                (
                    MaintenanceStatus.COMPLETED,
                    resolved_at,
                    _("The scheduled maintenance has been completed."),
                )
            )
        updates = []
        for status, at, body in reversed(steps):  # newest first, as Statuspage lists them
            stamp = self.ts(at)
            updates.append(
                {
                    "id": f"{window_id}-{status}",
                    "status": str(status),
                    "body": body or window.title,
                    "incident_id": window_id,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "display_at": stamp,
                    "affected_components": None,
                    "deliver_notifications": True,
                    "custom_tweet": None,
                    "tweet_id": None,
                }
            )
        return {
            "id": window_id,
            "name": window.title,
            "status": str(window.status),
            "created_at": self.ts(window.created_at),
            "updated_at": self.ts(max(at for _status, at, _body in steps)),
            "monitoring_at": None,
            "resolved_at": self.ts(resolved_at),
            "impact": "maintenance",
            "shortlink": f"{self.page['url']}/history/",
            "started_at": self.ts(window.created_at),
            "page_id": self.page["id"],
            "incident_updates": updates,
            "components": [
                self.component_of[s.pk] for s in window.public_services if s.pk in self.component_of
            ],
            "scheduled_for": self.ts(window.scheduled_start),
            "scheduled_until": self.ts(window.scheduled_end),
            "reminder_intervals": None,
        }


def _clean(component):
    return {k: v for k, v in component.items() if not k.startswith("_")}


def payloads(page, *, now=None):
    """Every Statuspage v2 document, keyed by its path under ``/api/v2/``.

    ``page``: {"id", "name", "url", "time_zone", "updated_at" (aware)}. Runs a fixed number
    of queries."""
    now = now or timezone.now()
    builder = _Builder(page)
    services = list(public.public_services())
    components = builder.components(services)

    recent = list(public.public_incidents()[:RECENT])
    unresolved = list(public.active_incidents())
    windows = list(public.public_maintenance()[:RECENT])
    active = list(public.active_maintenance())
    upcoming = list(public.upcoming_maintenance(now))

    caused = public.incident_impacts({i.pk for i in recent} | {i.pk for i in unresolved})
    times = public.maintenance_times({w.pk for w in windows} | {w.pk for w in active})

    # Strip the builder's bookkeeping only after every incident has picked its components.
    recent_json = [builder.incident(i, caused) for i in recent]
    unresolved_json = [builder.incident(i, caused) for i in unresolved]
    windows_json = [builder.maintenance(w, times) for w in windows]
    active_json = [builder.maintenance(w, times) for w in active]
    upcoming_json = [builder.maintenance(w, times) for w in upcoming]
    for items in (recent_json, unresolved_json, windows_json, active_json, upcoming_json):
        for item in items:
            item["components"] = [_clean(c) for c in item["components"]]
    components = [_clean(c) for c in components]

    status = page_status(s.status for s in services)
    page_dict = builder.page_dict
    return {
        "summary.json": {
            "page": page_dict,
            "components": components,
            "incidents": unresolved_json,
            "scheduled_maintenances": active_json + upcoming_json,
            "status": status,
        },
        "status.json": {"page": page_dict, "status": status},
        "components.json": {"page": page_dict, "components": components},
        "incidents.json": {"page": page_dict, "incidents": recent_json},
        "incidents/unresolved.json": {"page": page_dict, "incidents": unresolved_json},
        "scheduled-maintenances.json": {"page": page_dict, "scheduled_maintenances": windows_json},
        "scheduled-maintenances/upcoming.json": {
            "page": page_dict,
            "scheduled_maintenances": upcoming_json,
        },
        "scheduled-maintenances/active.json": {
            "page": page_dict,
            "scheduled_maintenances": active_json,
        },
    }
