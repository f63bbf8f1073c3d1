"""What the public side serves: published snapshots, and the daily uptime figures they show.

Readers never run the live queries (DESIGN.md rule 5): ``statuspage.publish`` renders every
public output into ``Snapshot`` rows (and files, for a static host), and views hand those rows
out with their ETag. ``UptimeDay`` holds each public service's day, rolled up by a task from the
status history, so a 90-day bar is a read of 90 small rows, not of the history itself.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from services.models import Service, ServiceStatus


class Snapshot(models.Model):
    """One public output as it was last published: the body a reader gets for ``path`` (a URL
    path such as ``/``, ``/incidents/42/`` or ``/api/v2/summary.json``) in ``language`` (blank
    for outputs in no language: JSON, calendars)."""

    path = models.CharField(_("path"), max_length=300)
    language = models.CharField(_("language"), max_length=8, blank=True)
    content_type = models.CharField(_("content type"), max_length=100)
    body = models.BinaryField(_("body"))
    etag = models.CharField(_("ETag"), max_length=70)
    # When the body last changed (Last-Modified), not when it was last re-rendered.
    modified_at = models.DateTimeField(_("modified"))

    class Meta:
        verbose_name = _("published page")
        verbose_name_plural = _("published pages")
        constraints = [
            models.UniqueConstraint(fields=["path", "language"], name="snapshot_one_per_path")
        ]

    def __str__(self):
        return f"{self.path} ({self.language or '-'})"


class PublishState(models.Model):
    """The one row that serialises publishing and remembers when the last one started: a
    request to publish sent before that moment is covered by it (its change had committed)."""

    started_at = models.DateTimeField(_("last publish started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("last publish finished"), null=True, blank=True)
    full_at = models.DateTimeField(_("last full publish"), null=True, blank=True)
    # Incident pages are re-rendered when their incident changed since this moment.
    incidents_since = models.DateTimeField(_("incident pages current up to"), null=True, blank=True)

    class Meta:
        verbose_name = _("publish state")
        verbose_name_plural = _("publish state")

    def __str__(self):
        return f"published {self.finished_at}"


class UptimeDay(models.Model):
    """A public service's day (in the status page's time zone): seconds spent in each hurt
    status, the worst status, and the public incidents that hurt it that day."""

    service = models.ForeignKey(
        Service, on_delete=models.CASCADE, related_name="uptime_days", verbose_name=_("service")
    )
    day = models.DateField(_("day"))
    worst_status = models.CharField(_("worst status"), max_length=32, choices=ServiceStatus.choices)
    degraded_seconds = models.PositiveIntegerField(_("degraded performance (s)"), default=0)
    partial_seconds = models.PositiveIntegerField(_("partial outage (s)"), default=0)
    major_seconds = models.PositiveIntegerField(_("major outage (s)"), default=0)
    maintenance_seconds = models.PositiveIntegerField(_("under maintenance (s)"), default=0)
    # Seconds of the day the history covers (less than a day for today and the service's first).
    observed_seconds = models.PositiveIntegerField(_("observed (s)"), default=0)
    incident_ids = models.JSONField(_("incidents"), default=list, blank=True)

    class Meta:
        verbose_name = _("uptime day")
        verbose_name_plural = _("uptime days")
        constraints = [
            models.UniqueConstraint(fields=["service", "day"], name="uptime_day_one_per_service")
        ]

    def __str__(self):
        return f"{self.service_id} {self.day} {self.worst_status}"
