"""The outbox in the admin: events with their counts per status (or "expanding" while workers
are still writing their rows), and notifications with their errors and a retry action. The
preview of the email a public update would send is on the incident's own page (incidents know
their payloads; notifications know no incident)."""

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from itsm.actors import subject_q
from itsm.admin_changelist import SafeLookupMixin
from notifications import webhooks
from notifications.delivery import retry_notifications
from notifications.models import (
    WEBHOOK_EVENT_TYPES,
    ChannelCircuit,
    EmailOptOut,
    Notification,
    NotificationEvent,
    NotificationStatus,
    WebhookEndpoint,
)


def visible_events(queryset, user, prefix=""):
    """Events (or, with ``prefix``, rows leading to an event) the user may see: about nothing,
    or about a subject (an incident, ...) whose owner's read rule lets them see it."""
    return queryset.filter(subject_q(user, prefix=prefix))


@admin.register(NotificationEvent)
class NotificationEventAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "kind",
        "key",
        "subject_kind",
        "subject_id",
        "recipients",
        *[f"n_{s}" for s in NotificationStatus.values],
    ]
    list_filter = ["kind", "subject_kind"]
    search_fields = ["key"]
    readonly_fields = [
        "kind",
        "key",
        "subject_kind",
        "subject_id",
        "payload",
        "audience",
        "created_at",
        "expanded_at",
        "cancelled_at",
        "cancel_reason",
        "recipients",
        "counts",
    ]
    show_full_result_count = False
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        counts = {
            f"n_{status}": Count("notifications", filter=Q(notifications__status=status))
            for status in NotificationStatus.values
        }
        return visible_events(super().get_queryset(request), request.user).annotate(
            n_total=Count("notifications"), **counts
        )

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("recipients"), ordering="n_total")
    def recipients(self, obj):
        """The row count once the event is expanded; until then the count so far would read
        as "nobody", so say that workers are still writing the rows."""
        total = getattr(obj, "n_total", 0)
        if obj.expanded_at is None:
            return _("expanding (%(count)s so far)") % {"count": total} if total else _("expanding")
        return total

    @admin.display(description=_("per status"))
    def counts(self, obj):
        url = reverse("admin:notifications_notification_changelist")
        return format_html_join(
            " · ",
            '<a href="{}?event__id__exact={}&amp;status__exact={}">{}: {}</a>',
            (
                (url, obj.pk, status, label, getattr(obj, f"n_{status}", 0))
                for status, label in NotificationStatus.choices
            ),
        )


def _count_column(status, label):
    def column(self, obj):
        return getattr(obj, f"n_{status}", 0)

    column.short_description = label
    column.admin_order_field = f"n_{status}"
    return column


for _status, _label in NotificationStatus.choices:
    setattr(NotificationEventAdmin, f"n_{_status}", _count_column(_status, _label))


class WaitingFilter(admin.SimpleListFilter):
    """What waits, and why: for a channel that is down, or for a retry after its own error."""

    title = _("waiting")
    parameter_name = "waiting"

    def lookups(self, request, model_admin):
        return [
            ("channel", _("for a channel that is down")),
            ("retry", _("for a retry after an error")),
        ]

    def queryset(self, request, queryset):
        pending = queryset.filter(status=NotificationStatus.PENDING)
        if self.value() == "channel":
            return pending.exclude(waiting_for="")
        if self.value() == "retry":
            return pending.filter(waiting_for="").exclude(last_error="")
        return queryset


@admin.register(Notification)
class NotificationAdmin(SafeLookupMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "event_kind",
        "channel",
        "address",
        "language",
        "status",
        "attempts",
        "next_attempt_at",
        "waiting_for",
        "sent_at",
        "short_error",
    ]
    list_filter = ["status", WaitingFilter, "channel", "event__kind"]
    search_fields = ["=address", "recipient_key"]
    list_select_related = ["event"]
    raw_id_fields = ["event", "contact", "user", "subscription", "endpoint"]
    readonly_fields = [
        "event",
        "channel",
        "recipient_key",
        "contact",
        "user",
        "subscription",
        "endpoint",
        "address",
        "language",
        "status",
        "attempts",
        "worker_deaths",
        "next_attempt_at",
        "waiting_for",
        "lease_expires_at",
        "created_at",
        "sent_at",
        "last_error",
        "message_id",
    ]
    show_full_result_count = False
    actions = ["retry"]

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        return visible_events(super().get_queryset(request), request.user, prefix="event__")

    @admin.display(description=_("event"), ordering="event__kind")
    def event_kind(self, obj):
        return obj.event.get_kind_display()

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return (obj.last_error[:80] + "…") if len(obj.last_error) > 80 else obj.last_error

    # The rows themselves stay read-only (``readonly_fields``): "change" here means "may send
    # again", and the read-only group must not.
    @admin.action(description=_("Retry the selected failed notifications"), permissions=["change"])
    def retry(self, request, queryset):
        count = retry_notifications(queryset, actor=request.user)
        self.message_user(
            request,
            ngettext(
                "%(count)d notification will be sent again.",
                "%(count)d notifications will be sent again.",
                count,
            )
            % {"count": count},
            messages.SUCCESS if count else messages.WARNING,
        )


@admin.register(EmailOptOut)
class EmailOptOutAdmin(admin.ModelAdmin):
    list_display = ["contact", "created_at"]
    search_fields = ["contact__email"]
    raw_id_fields = ["contact"]
    list_select_related = ["contact"]


@admin.register(ChannelCircuit)
class ChannelCircuitAdmin(admin.ModelAdmin):
    """Channels that are down: since when, the next probe, the last error. Read-only; a
    successful probe closes (deletes) the row."""

    list_display = ["key", "opened_at", "failures", "retry_at", "last_error"]
    readonly_fields = list_display

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- integrators' webhook endpoints ------------------------------------------------------------

_EVENT_TYPE_CHOICES = [(str(t), t.label) for t in WEBHOOK_EVENT_TYPES]


class WebhookEndpointForm(forms.ModelForm):
    event_types = forms.MultipleChoiceField(
        label=_("event types"),
        choices=_EVENT_TYPE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "event_types", "is_active", "organization"]


class EventTypeFilter(admin.SimpleListFilter):
    title = _("event type")
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return _EVENT_TYPE_CHOICES

    def queryset(self, request, queryset):
        if self.value() in dict(_EVENT_TYPE_CHOICES):
            # The JSON list as text holds the quoted name (works on SQLite and PostgreSQL).
            return queryset.filter(event_types__icontains=f'"{self.value()}"')
        return queryset


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SafeLookupMixin, admin.ModelAdmin):
    """Integrators' endpoints: what they hear, whether the last message arrived. The secret is
    shown once, in a message, when the endpoint is added or its secret rotated."""

    form = WebhookEndpointForm
    list_display = [
        "url",
        "description",
        "organization",
        "is_active",
        "events",
        "last_delivery",
        "created_at",
    ]
    list_filter = ["is_active", EventTypeFilter, "organization"]
    search_fields = ["url", "description"]
    list_select_related = ["organization"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_by", "created_at", "updated_at"]
    actions = ["rotate_secret", "send_test"]

    def get_queryset(self, request):
        return super().get_queryset(request).with_last_delivery()

    @admin.display(description=_("event types"))
    def events(self, obj):
        return ", ".join(obj.event_types or ())

    @admin.display(description=_("last delivery"), ordering="last_at")
    def last_delivery(self, obj):
        status = getattr(obj, "last_status", None)
        if status is None:
            return _("nothing sent yet")
        label = NotificationStatus(status).label
        error = (obj.last_error or "")[:80]
        return f"{label} ({error})" if error and status != NotificationStatus.SENT else label

    def save_model(self, request, obj, form, change):
        values = {f: form.cleaned_data[f] for f in form.Meta.fields if f in form.cleaned_data}
        if change:
            changed = {f: values[f] for f in form.changed_data if f in values}
            webhooks.change_endpoint(obj, actor=request.user, changes=changed)
            return
        created = webhooks.create_endpoint(actor=request.user, **values)
        obj.pk, obj.secret, obj._state.adding = created.pk, created.secret, False
        self._show_secret(request, created)

    def _show_secret(self, request, endpoint):
        self.message_user(
            request,
            _(
                "The signing secret of %(endpoint)s, shown this once (give it to the "
                "integrator): %(secret)s"
            )
            % {"endpoint": endpoint.url, "secret": endpoint.secret},
            messages.WARNING,
        )

    @admin.action(description=_("Rotate the signing secret"), permissions=["change"])
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            webhooks.rotate_secret(endpoint, actor=request.user)
            self._show_secret(request, endpoint)

    @admin.action(description=_("Send a test ping"), permissions=["change"])
    def send_test(self, request, queryset):
        sent = 0
        for endpoint in queryset:
            try:
                webhooks.send_ping(endpoint, actor=request.user)
                sent += 1
            except webhooks.EndpointError as exc:
                self.message_user(request, f"{endpoint.url}: {exc}", messages.WARNING)
        if sent:
            self.message_user(
                request,
                ngettext(
                    "A ping is queued for %(count)d endpoint.",
                    "A ping is queued for %(count)d endpoints.",
                    sent,
                )
                % {"count": sent},
                messages.SUCCESS,
            )
