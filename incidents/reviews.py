"""Post-incident reviews: what happened (a draft generated from the incident's timeline), what
staff made of it, and the action items that follow.

The models live with incidents, not problems: a review is built from the incident's timeline,
impact intervals, notifications and cost, all of which sit at or below ``incidents`` in the
layers; an action item may point at a problem (``problems`` is below ``incidents``, so the
link points the allowed way). Changes go through ``incidents.review_workflow``.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class PostIncidentReview(models.Model):
    incident = models.OneToOneField(
        "incidents.Incident",
        on_delete=models.CASCADE,
        related_name="review",
        verbose_name=_("incident"),
    )
    # Generated once from the timeline when the review starts (``review_workflow.start_review``)
    # and regenerated on request; Markdown.
    draft = models.TextField(_("draft (from the timeline)"), blank=True)
    summary = models.TextField(_("summary"), blank=True)
    impact = models.TextField(_("impact"), blank=True)
    contributing_factors = models.TextField(_("contributing factors"), blank=True)
    went_well = models.TextField(_("what went well"), blank=True)
    went_badly = models.TextField(_("what did not go well"), blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("started"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("post-incident review")
        verbose_name_plural = _("post-incident reviews")

    def __str__(self):
        return str(_("Review of %(incident)s") % {"incident": self.incident})


class ActionItemState(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")


class ActionItem(models.Model):
    review = models.ForeignKey(
        PostIncidentReview,
        on_delete=models.CASCADE,
        related_name="action_items",
        verbose_name=_("review"),
    )
    title = models.CharField(_("title"), max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="action_items",
        verbose_name=_("owner"),
    )
    due_on = models.DateField(_("due"))
    state = models.CharField(
        _("state"), max_length=16, choices=ActionItemState.choices, default=ActionItemState.OPEN
    )
    problem = models.ForeignKey(
        "problems.Problem",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="action_items",
        verbose_name=_("problem"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["due_on", "id"]
        verbose_name = _("action item")
        verbose_name_plural = _("action items")
        indexes = [
            # The daily reminder: open items past due, nothing else.
            models.Index(
                fields=["due_on"], condition=models.Q(state="open"), name="action_item_due_idx"
            )
        ]

    def __str__(self):
        return self.title


class ActionItemReminder(models.Model):
    """An overdue item's reminder of one day: the unique row makes it once per item and day,
    whatever number of beats or workers race for it."""

    item = models.ForeignKey(ActionItem, on_delete=models.CASCADE, related_name="reminders")
    day = models.DateField(_("day"))
    sent_at = models.DateTimeField(_("queued"), default=timezone.now)

    class Meta:
        verbose_name = _("action item reminder")
        verbose_name_plural = _("action item reminders")
        constraints = [
            models.UniqueConstraint(fields=["item", "day"], name="one_reminder_per_item_and_day")
        ]

    def __str__(self):
        return f"{self.item_id} {self.day:%Y-%m-%d}"
