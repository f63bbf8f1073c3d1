"""Reads of schedules as plain rotation values, in a constant number of queries however many
schedules are asked about, and the answers built on them (who is on call now and next, the
shifts of a range, a person's shifts)."""

from collections import defaultdict
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from oncall import rotation
from oncall.models import Layer, LayerMember, Override, Schedule

# Overrides that ended before this look-back are not read for "now" questions.
_OVERRIDE_LOOKBACK = timedelta(days=1)


class Plan:
    """One schedule as rotation values: ``layers`` (lowest level first) and ``overrides``."""

    def __init__(self, schedule_id, layers, overrides):
        self.schedule_id = schedule_id
        self.layers = layers
        self.overrides = overrides

    def on_call_at(self, t):
        return rotation.on_call_at(self.layers, self.overrides, t)

    def shifts_between(self, start, end):
        return rotation.shifts_between(self.layers, self.overrides, start, end)

    def next_shifts(self, t, n):
        return rotation.next_shifts(self.layers, self.overrides, t, n)


def plans(schedule_ids, *, overrides_after=None):
    """{schedule id: Plan} in three queries. ``overrides_after``: read only overrides ending
    after this instant (None: all)."""
    schedule_ids = list(schedule_ids)
    members = defaultdict(list)
    for layer_id, user_id in (
        LayerMember.objects.filter(layer__schedule_id__in=schedule_ids)
        .order_by("layer_id", "position", "pk")
        .values_list("layer_id", "user_id")
    ):
        members[layer_id].append(user_id)
    layers = defaultdict(list)
    for layer in Layer.objects.filter(schedule_id__in=schedule_ids).order_by("level", "pk"):
        value = layer.as_rotation(members[layer.pk])
        if value is not None:
            layers[layer.schedule_id].append(value)
    overrides = defaultdict(list)
    found = Override.objects.filter(schedule_id__in=schedule_ids)
    if overrides_after is not None:
        found = found.filter(end__gt=overrides_after)
    for schedule_id, user_id, start, end in found.order_by("created_at", "pk").values_list(
        "schedule_id", "user_id", "start", "end"
    ):
        overrides[schedule_id].append(rotation.Override(start, end, user_id))
    return {pk: Plan(pk, layers[pk], overrides[pk]) for pk in schedule_ids}


def plan(schedule_id, **kwargs):
    return plans([schedule_id], **kwargs)[schedule_id]


def on_call_now(schedule_ids, now=None):
    """{schedule id: user id or None} for many schedules, in three queries."""
    now = now or timezone.now()
    found = plans(schedule_ids, overrides_after=now - _OVERRIDE_LOOKBACK)
    return {pk: p.on_call_at(now) for pk, p in found.items()}


def users_by_id(ids):
    return get_user_model().objects.in_bulk({i for i in ids if i is not None})


def shifts_of_person(user_id, start, end):
    """[(schedule, shift)] of one person in [start, end) over every schedule they are in
    (a rotation or an override), in time order."""
    schedule_ids = set(
        LayerMember.objects.filter(user_id=user_id).values_list("layer__schedule_id", flat=True)
    ) | set(
        Override.objects.filter(user_id=user_id, end__gt=start).values_list(
            "schedule_id", flat=True
        )
    )
    schedules = Schedule.objects.in_bulk(schedule_ids)
    found = []
    for pk, p in plans(schedule_ids).items():
        for shift in p.shifts_between(start, end):
            if shift.person == user_id:
                found.append((schedules[pk], shift))
    found.sort(key=lambda pair: (pair[1].start, pair[0].pk))
    return found
