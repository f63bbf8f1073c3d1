"""On-call in the admin: schedules with their 14-day timeline, who is on call now and next, an
override form; rotation layers and their people; escalation policies and their levels; a
"my shifts" page with the person's calendar feed."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from oncall import ical, schedules, timeline, workflow
from oncall.models import (
    EscalationLevel,
    EscalationPolicy,
    Layer,
    LayerMember,
    Override,
    Schedule,
)

TIMELINE_DAYS = 14


class OverrideForm(forms.Form):
    user = forms.ModelChoiceField(
        label=_("Person"), queryset=get_user_model().objects.filter(is_staff=True, is_active=True)
    )
    start = forms.DateTimeField(label=_("From"))
    end = forms.DateTimeField(label=_("Until"))
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", _("The end must be after the start."))
        return data


class LayerInline(admin.TabularInline):
    model = Layer
    extra = 0
    fields = ["name", "level", "start", "zone", "shift_kind", "shift_hours", "edit_link"]
    readonly_fields = ["edit_link"]
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("members__user")

    @admin.display(description=_("people"))
    def edit_link(self, obj):
        if not obj.pk:
            return "-"
        return ", ".join(m.user.get_username() for m in obj.members.all())


class OverrideInline(admin.TabularInline):
    """Overrides are added with the form above the timeline; here they are listed (and can be
    deleted), read-only, so the page costs the same however many there are."""

    model = Override
    extra = 0
    fields = ["user", "start", "end", "note"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "team"]
    list_select_related = ["team__group"]
    search_fields = ["name"]
    inlines = [LayerInline, OverrideInline]
    change_form_template = "admin/oncall/schedule/change_form.html"

    def get_urls(self):
        mine = [
            path(
                "<path:object_id>/override/",
                self.admin_site.admin_view(self.add_override_view),
                name="oncall_schedule_override",
            ),
            path(
                "my-shifts/",
                self.admin_site.admin_view(self.my_shifts_view),
                name="oncall_my_shifts",
            ),
        ]
        return mine + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        schedule = self.get_object(request, unquote(object_id))
        extra = dict(extra_context or {})
        if schedule is not None:
            extra.update(schedule_context(schedule, timezone.now()))
            extra["override_form"] = OverrideForm(
                initial={"start": timezone.now(), "end": timezone.now() + timedelta(hours=8)}
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def add_override_view(self, request, object_id):
        # A hand-typed id ("a\x00b", "²") is a 404 like a missing one, never a 500.
        pk = object_id if object_id.isascii() and object_id.isdigit() else None
        if pk is None or len(pk) >= 19:
            raise Http404
        schedule = get_object_or_404(Schedule, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, schedule):
            return HttpResponseRedirect(reverse("admin:oncall_schedule_change", args=[schedule.pk]))
        form = OverrideForm(request.POST)
        if form.is_valid():
            workflow.add_override(schedule, actor=request.user, **form.cleaned_data)
            messages.success(request, _("Override added."))
        else:
            for field, errors in form.errors.items():
                for error in errors:
                    messages.error(
                        request,
                        f"{form.fields[field].label if field in form.fields else ''} {error}",
                    )
        return HttpResponseRedirect(reverse("admin:oncall_schedule_change", args=[schedule.pk]))

    def my_shifts_view(self, request):
        now = timezone.now()
        found = schedules.shifts_of_person(request.user.pk, now, now + timedelta(days=28))
        context = {
            **self.admin_site.each_context(request),
            "title": _("My on-call shifts"),
            "shifts": found,
            "feed_url": ical.feed_url(ical.person_token(request.user)),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/oncall/schedule/my_shifts.html", context)


def schedule_context(schedule, now):
    """What the schedule page shows: the timeline, now and next, the feed URL."""
    start = now.replace(minute=0, second=0, microsecond=0)
    end = start + timedelta(days=TIMELINE_DAYS)
    plan = schedules.plan(schedule.pk)
    shifts = plan.shifts_between(start, end)
    upcoming = plan.next_shifts(now, 2)
    users = schedules.users_by_id([s.person for s in shifts] + [s.person for s in upcoming])
    names = {pk: u.get_full_name() or u.get_username() for pk, u in users.items()}
    zone = plan.layers[-1].zone if plan.layers else "UTC"
    current = next((s for s in upcoming if s.start <= now < s.end), None)
    following = next((s for s in upcoming if s.start > now or s is not current), None)
    if following is current:
        following = None
    return {
        "timeline_svg": mark_safe(timeline.svg(shifts, start, TIMELINE_DAYS, names, zone, now)),  # noqa: S308 - every label is escaped in timeline.svg
        "on_call_now": names.get(current.person) if current else None,
        "on_call_now_until": current.end if current else None,
        "on_call_next": names.get(following.person) if following else None,
        "on_call_next_from": following.start if following else None,
        "feed_url": ical.feed_url(ical.schedule_token(schedule)),
    }


class LayerMemberInline(admin.TabularInline):
    model = LayerMember
    extra = 1
    fields = ["position", "user"]
    raw_id_fields = ["user"]


@admin.register(Layer)
class LayerAdmin(admin.ModelAdmin):
    list_display = ["__str__", "schedule", "level", "shift_kind", "zone", "start"]
    list_select_related = ["schedule"]
    inlines = [LayerMemberInline]
    fields = [
        "schedule",
        "name",
        "level",
        "start",
        "zone",
        "shift_kind",
        "shift_hours",
        "restrict_weekdays",
        "restrict_from",
        "restrict_to",
    ]


class EscalationLevelInline(admin.TabularInline):
    model = EscalationLevel
    extra = 1
    fields = ["position", "target", "schedule", "user", "team", "wait_minutes"]
    raw_id_fields = ["user"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ["name", "is_default", "repeat", "starts_on_urgent"]
    inlines = [EscalationLevelInline]
    filter_horizontal = ["services", "teams"]
