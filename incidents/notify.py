"""What incidents tell people, through the outbox: the payload of an incident's customer
messages, the staff messages about it, the preview of an update's email, and the reads of what
was sent. Notifications are generic (they know no incident): this module builds what they need
and names the events' subject as ("incident", id)."""

import functools
from typing import NamedTuple

from django.conf import settings
from django.db import connection

from incidents import deadlines, visibility
from incidents.models import IncidentService
from itsm import rows
from notifications import outbox, queries, webhooks
from notifications.models import INCIDENT_KINDS, EventKind
from notifications.rendering import render_email
from services import graph
from services.announcements import public_service_names
from services.models import Service

SUBJECT_KIND = "incident"


def incident_url(incident):
    return f"{settings.SITE_URL}/incidents/{incident.pk}/"


class _Service(NamedTuple):
    """What a customer message needs of an affected service (a ``Service`` would do too)."""

    pk: int
    name: str
    is_public: bool


@functools.cache
def _services_sql():
    q = connection.ops.quote_name
    service, affected = q(Service._meta.db_table), q(IncidentService._meta.db_table)
    joined = f"FROM {affected} a JOIN {service} s ON s.id = a.service_id WHERE a.incident_id = %s"
    return (
        f"SELECT s.id, s.name, s.is_public {joined} ORDER BY s.display_order, s.name",  # noqa: S608
        f"SELECT s.id {joined} AND s.is_public",  # noqa: S608 (names from the models)
    )


def _services_of(incident):
    return [_Service(*row) for row in _read_services(incident)[0]]


def _audience_statements(incident_pk):
    services_sql, public_sql = _services_sql()
    return [(services_sql, [incident_pk]), graph.hurt_ids_statement(public_sql, [incident_pk])]


def _keep_audience(incident, results):
    incident.__dict__["_prefetched_audience"] = results


# A change that will announce itself reads the services with its row lock (``_lock``).
AUDIENCE = deadlines.Prefetch(_audience_statements, _keep_audience)


def _read_services(incident):
    """The incident's services in display order [(id, name, public)] and the ids of the services
    whose subscribers hear of it (``outbox.notified_service_ids``): one round trip, none when
    read with the lock (``AUDIENCE``)."""
    found, hurt = incident.__dict__.pop("_prefetched_audience", None) or rows.read_together(
        _audience_statements(incident.pk)
    )
    private = {pk for pk, _name, public in found if not public}
    return found, {pk for (pk,) in hurt} | private


def incident_payload(incident, *, kind, body="", body_ro="", public_status="", services=None):
    """All the customer templates need about ``incident``, computed once per event.
    ``services``: the incident's services in display order, when the caller read them."""
    if services is None:
        services = _services_of(incident)
    if incident.is_confidential:
        # A confidential incident tells customers only what its public update says: no title,
        # reference or link that would name it (the templates then show the heading, status,
        # message and public services).
        return {
            "incident_id": None,
            "reference": "",
            "title": "",
            "public_status": public_status or incident.public_status or "",
            "body": body,
            "body_ro": body_ro,
            "services": public_service_names(services),
            "url": f"{settings.SITE_URL}/",
            "kind": str(kind),
            "site_url": settings.SITE_URL,
        }
    return {
        "incident_id": incident.pk,
        "reference": incident.reference,
        "title": incident.title,
        "public_status": public_status or incident.public_status or "",
        "body": body,
        "body_ro": body_ro,
        "services": public_service_names(services),
        "url": incident_url(incident),
        "kind": str(kind),
        "site_url": settings.SITE_URL,
    }


def enqueue_incident_event(*, incident, kind, update=None):
    """Queue the customer notifications for a public incident change: the subscribers of its
    services (and of everything depending on them) and its reporting organisation.

    Call inside the transaction that makes the change. ``update`` is the public
    ``IncidentUpdate`` that caused it, if any. Returns the new event, or None when this event
    (same incident, kind and update) was queued already."""
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"not an incident event kind: {kind}")
    found, notified = _read_services(incident)  # one read for the payload and the audience
    services = [_Service(*row) for row in found]
    payload = incident_payload(
        incident,
        kind=kind,
        body=update.body if update else "",
        body_ro=update.body_ro if update else "",
        public_status=(update.public_status if update else "") or incident.public_status,
        services=services,
    )
    return outbox.enqueue_customer_event(
        kind=kind,
        key=f"incident:{incident.pk}:{kind}:{update.pk if update else ''}",
        payload=payload,
        services=services,
        organization_id=incident.organization_id,
        subject_kind=SUBJECT_KIND,
        subject_id=incident.pk,
        notified_ids=notified,
    )


# --- integrators' webhook endpoints ----------------------------------------------------------


def _keep_webhook_targets(incident, results):
    incident.__dict__["_webhook_targets"] = webhooks.parse_targets(results[0])


# Every transition reads the active endpoints in the round trip of its row lock: telling
# integrators costs no query when nobody listens.
WEBHOOK_TARGETS = deadlines.Prefetch(
    lambda pk: [webhooks.targets_statement()], _keep_webhook_targets
)


def _listeners(incident, event_type):
    """The active endpoints that want ``event_type`` and may read ``incident`` (the incident
    visibility rule, for a token of the endpoint's organisation: never a confidential one)."""
    targets = incident.__dict__.get("_webhook_targets")
    if targets is None:
        targets = incident.__dict__["_webhook_targets"] = webhooks.read_targets()
    return [t for t in targets if t.wants(event_type) and visibility.can_see(t.actor, incident)]


def forget_webhook_targets(incident):
    """Drop the endpoints read with the lock (at the end of the change that read them)."""
    incident.__dict__.pop("_webhook_targets", None)


def webhook_incident(incident):
    """The incident as a webhook carries it: the API's ``IncidentSerializer`` (a few reads,
    made only when an endpoint listens)."""
    from incidents.api.serializers import IncidentSerializer

    return dict(IncidentSerializer(incident).data)


def tell_integrators(incident, event_type):
    """Queue ``incident.created|updated|resolved`` about ``incident`` as it is now (version
    included, so each change is its own event) for the endpoints that listen. Call in the
    transaction of the change, after the row is written."""
    listeners = _listeners(incident, event_type)
    if not listeners:
        return None
    return outbox.enqueue_webhook_event(
        kind=event_type,
        key=f"incident:{incident.pk}:{event_type}:v{incident.version}",
        data={"incident": webhook_incident(incident)},
        endpoints=listeners,
        subject_kind=SUBJECT_KIND,
        subject_id=incident.pk,
    )


def tell_integrators_of_sla(incident, *, target, threshold, due_at, is_breach):
    """Queue ``sla.warning`` or ``sla.breached`` (once per incident, target and threshold)."""
    event_type = EventKind.WEBHOOK_SLA_BREACHED if is_breach else EventKind.WEBHOOK_SLA_WARNING
    listeners = _listeners(incident, event_type)
    if not listeners:
        return None
    return outbox.enqueue_webhook_event(
        kind=event_type,
        key=f"incident:{incident.pk}:sla:{target}:{threshold}",
        data={
            "target": str(target),
            "threshold_percent": threshold // 10,
            "due_at": due_at.isoformat() if due_at else None,
            "incident": webhook_incident(incident),
        },
        endpoints=listeners,
        subject_kind=SUBJECT_KIND,
        subject_id=incident.pk,
    )


def withdraw_notifications(sender, instance, **kwargs):
    """post_delete receiver of ``Incident``: nothing more is sent about a deleted incident
    (customer and staff messages still queued are cancelled, in the deleting transaction);
    what was sent stays in the outbox as the record."""
    outbox.cancel_for_subject(
        SUBJECT_KIND, instance.pk, reason=f"not sent: incident {instance.pk} was deleted"
    )


def staff_message(*, kind, key, subject, body, users=(), groups=(), emails=(), incident=None):
    """A staff message (see ``notifications.outbox.StaffMessage``), about ``incident`` when
    given: its reference, title and admin link go into the message, and only people who
    may see the incident receive it (a confidential one: no team mailbox, no outsider)."""
    details, about, readers = {}, {}, None
    if incident is not None:
        details = {
            "incident_id": incident.pk,
            "reference": incident.reference,
            "title": incident.title,
            "url": f"{settings.SITE_URL}/admin/incidents/incident/{incident.pk}/change/",
        }
        about = {"subject_kind": SUBJECT_KIND, "subject_id": incident.pk}
        readers = visibility.readers_of(incident)
    return outbox.StaffMessage(
        kind=kind,
        key=key,
        subject=subject,
        body=body,
        users=tuple(users),
        groups=tuple(groups),
        emails=tuple(emails),
        details=details,
        readers=readers,
        **about,
    )


def notify_staff(**message):
    """Queue one staff message (the arguments of ``staff_message``); the new event, or None
    when its key was queued already."""
    return outbox.notify_staff_batch([staff_message(**message)])[0]


def notify_staff_batch(messages):
    """Queue many ``staff_message``s in a constant number of statements."""
    return outbox.notify_staff_batch(messages)


def render_preview(incident, body, public_status, language, *, body_ro=""):
    """The email a public update with ``body`` would send, exactly as a customer would get it
    (with a sample unsubscribe link). Writes nothing. Returns a dict with subject, text, html."""
    kind = EventKind.INCIDENT_UPDATED if incident.published_at else EventKind.INCIDENT_PUBLISHED
    if public_status == "resolved":
        kind = EventKind.INCIDENT_RESOLVED
    payload = incident_payload(
        incident, kind=kind, body=body, body_ro=body_ro, public_status=public_status
    )
    subject, text, html = render_email(
        kind, payload, language, unsubscribe_url="#unsubscribe-link-for-each-recipient"
    )
    return {"kind": kind, "subject": subject, "text": text, "html": html, "language": language}


def notifications_for_incident(incident):
    """Who was told about ``incident``, through which channel, when and with what result."""
    return queries.notifications_about(SUBJECT_KIND, incident.pk)


def events_being_expanded(incident):
    """Events about ``incident`` whose recipients workers are still writing."""
    return queries.events_being_expanded(SUBJECT_KIND, incident.pk)
