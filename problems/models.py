"""Problem records: the underlying cause behind one or more incidents. The full problem
management (known errors, post-incident reviews) builds on this."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ProblemState(models.TextChoices):
    OPEN = "open", _("Open")
    KNOWN_ERROR = "known_error", _("Known error")
    RESOLVED = "resolved", _("Resolved")
    CLOSED = "closed", _("Closed")


class Problem(models.Model):
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=ProblemState.choices, default=ProblemState.OPEN
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_problems",
        verbose_name=_("owner"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("problem")
        verbose_name_plural = _("problems")

    def __str__(self):
        return f"{self.reference} {self.title}"

    @property
    def reference(self):
        return f"PRB-{self.pk:06d}" if self.pk else "PRB-new"
