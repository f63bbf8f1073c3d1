"""What a message says: subject, plain text and HTML, rendered from templates in the
recipient's language. Rendered once per event and language; the per-recipient unsubscribe link
is put in afterwards, so 100,000 recipients cost a few renders, not 100,000."""

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _

from notifications.models import INCIDENT_KINDS, MAINTENANCE_KINDS, REQUESTED_KINDS, EventKind

# Stands in for the recipient's unsubscribe URL until the message is addressed. Only URL-safe
# characters, so it survives HTML escaping unchanged.
UNSUBSCRIBE_PLACEHOLDER = "ITSM-UNSUBSCRIBE-URL-PLACEHOLDER"


def _headings():
    return {
        EventKind.INCIDENT_PUBLISHED: _("We are investigating a problem"),
        EventKind.INCIDENT_UPDATED: _("Incident update"),
        EventKind.INCIDENT_RESOLVED: _("Incident resolved"),
        EventKind.MAINTENANCE_SCHEDULED: _("Maintenance scheduled"),
        EventKind.MAINTENANCE_STARTED: _("Maintenance started"),
        EventKind.MAINTENANCE_COMPLETED: _("Maintenance completed"),
    }


def _status_labels():
    return {
        "investigating": _("Investigating"),
        "identified": _("Identified"),
        "monitoring": _("Monitoring"),
        "resolved": _("Resolved"),
    }


def render_email(kind, payload, language, *, unsubscribe_url=UNSUBSCRIBE_PLACEHOLDER):
    """(subject, text, html) for one event in one language."""
    with translation.override(language):
        if kind in INCIDENT_KINDS or kind in MAINTENANCE_KINDS:
            if language == "ro" and payload.get("body_ro"):
                # The message in the reader's language (an update may carry a Romanian text).
                payload = {**payload, "body": payload["body_ro"]}
            context = {
                "kind": kind,
                "p": payload,
                "heading": _headings()[kind],
                "is_incident": kind in INCIDENT_KINDS,
                "status_label": _status_labels().get(payload.get("public_status", ""), ""),
                "unsubscribe_url": unsubscribe_url,
                "language": language,
            }
            prefix = "notifications/email/customer"
        elif kind in REQUESTED_KINDS:
            context = {
                "kind": kind,
                "p": payload,
                "unsubscribe_url": unsubscribe_url,
                "language": language,
            }
            prefix = "notifications/email/subscription"
        else:
            context = {"kind": kind, "p": payload, "language": language}
            prefix = "notifications/email/staff"
        subject = render_to_string(f"{prefix}_subject.txt", context)
        text = render_to_string(f"{prefix}.txt", context)
        html = render_to_string(f"{prefix}.html", context)
    # A header must be one line.
    subject = " ".join(subject.split())
    return subject, text, html
