"""The write path of on-call: overrides, and escalations (start, stop, page the next level).

Escalations know no incident: the caller (``incidents.escalation``) names the subject by id,
says which services and team it concerns, writes its own timeline and messages from what
``page_next`` returns, and keeps the ``next_escalation_at`` column the beat sweeps."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Count, Prefetch

from itsm.actors import as_actor
from oncall import schedules
from oncall.models import (
    Escalation,
    EscalationLevel,
    EscalationPolicy,
    Override,
    Page,
    TargetKind,
)


def add_override(schedule, *, actor, user, start, end, note=""):
    """``user`` covers ``schedule`` in [start, end) for whoever the layers put there."""
    as_actor(actor)  # who asks must be named, as everywhere
    if end <= start:
        raise ValueError("an override ends after it starts")
    return Override.objects.create(schedule=schedule, user=user, start=start, end=end, note=note)


# --- which policy ------------------------------------------------------------------------------


def policy_for(*, service_ids=(), team_ids=()):
    """The escalation policy of a subject: the first one named by one of its services (lowest
    id), else by its team, else the default; None when there is none at all."""
    service_ids, team_ids = list(service_ids), list(team_ids)
    levels = Prefetch("levels", queryset=EscalationLevel.objects.order_by("position", "pk"))
    for lookup, ids in (("services__in", service_ids), ("teams__in", team_ids)):
        if ids:
            found = (
                EscalationPolicy.objects.filter(**{lookup: ids})
                .order_by("pk")
                .prefetch_related(levels)
                .first()
            )
            if found is not None:
                return found
    return EscalationPolicy.objects.filter(is_default=True).prefetch_related(levels).first()


def start(*, subject_id, reason, now, service_ids=(), team_ids=(), urgent=False):
    """Start escalating ``subject_id`` (call inside the caller's transaction, holding its row
    lock). ``urgent``: started by a new P1/P2 or alert incident, which a policy may decline
    (``starts_on_urgent``; the migrated default policy does, so a desk that never set up
    paging sees no change). Returns True when an escalation (re)starts, False when no policy
    applies; the caller then sets its next escalation to now."""
    policy = policy_for(service_ids=service_ids, team_ids=team_ids)
    if policy is None or (urgent and not policy.starts_on_urgent) or not policy.levels.all():
        return False
    # The caller starts only what is not escalating (its ``next_escalation_at`` is empty): an
    # escalation stopped by an acknowledgement, or done, starts again from level 1.
    current = Escalation.objects.select_for_update().filter(subject_id=subject_id).first()
    if current is None:
        Escalation.objects.create(
            subject_id=subject_id, policy=policy, reason=reason, started_at=now
        )
        return True
    Escalation.objects.filter(pk=current.pk).update(
        run=current.run + 1, policy=policy, reason=reason, started_at=now, stopped_at=None
    )
    return True


def stop(*, subject_id, now):
    """An acknowledgement stops the escalation (no more pages). True when one was running."""
    return bool(
        Escalation.objects.filter(subject_id=subject_id, stopped_at__isnull=True).update(
            stopped_at=now
        )
    )


# --- paging ------------------------------------------------------------------------------------


@dataclass
class Paged:
    """What ``page_next`` did for one subject: the page written (None: nothing to page), the
    users and groups to tell, and when the next level is due (None: the policy is done)."""

    page: Page | None = None
    users: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    next_at: object = None
    level: EscalationLevel | None = None


def page_next(subjects, *, now):
    """Page the next level of each subject's escalation. ``subjects``: {subject id: the
    escalation contact's user id of its team, or None}. Returns {subject id: Paged}.

    Exactly once per level and round: the ``Page`` row is unique per (escalation, run, round,
    level), so a second sweep that reaches the same step writes nothing and pages nobody.
    A constant number of queries for the batch, plus one insert per page."""
    escalations = {
        e.subject_id: e
        for e in Escalation.objects.filter(subject_id__in=list(subjects), stopped_at__isnull=True)
        .select_related("policy")
        .prefetch_related(
            Prefetch(
                "policy__levels",
                queryset=EscalationLevel.objects.select_related("team__group").order_by(
                    "position", "pk"
                ),
            )
        )
    }
    done = {
        (row["escalation_id"], row["run"]): row["n"]
        for row in Page.objects.filter(escalation__in=list(escalations.values()))
        .values("escalation_id", "run")
        .annotate(n=Count("pk"))
    }
    steps = {}
    for subject_id, escalation in escalations.items():
        levels = list(escalation.policy.levels.all())
        index = done.get((escalation.pk, escalation.run), 0)
        if not levels or index >= len(levels) * (escalation.policy.repeat + 1):
            continue
        steps[subject_id] = (escalation, levels, index)
    schedule_ids = {
        levels[index % len(levels)].schedule_id
        for _e, levels, index in steps.values()
        if levels[index % len(levels)].target == TargetKind.SCHEDULE
    }
    on_call = schedules.on_call_now(schedule_ids, now) if schedule_ids else {}
    wanted = set(on_call.values())
    wanted |= {
        levels[index % len(levels)].user_id
        for _e, levels, index in steps.values()
        if levels[index % len(levels)].target == TargetKind.USER
    }
    wanted |= {c for c in subjects.values() if c}
    users = get_user_model().objects.in_bulk({pk for pk in wanted if pk})
    result = {pk: Paged() for pk in subjects}
    for subject_id, (escalation, levels, index) in steps.items():
        level = levels[index % len(levels)]
        round_, position = divmod(index, len(levels))
        who, groups = [], []
        if level.target == TargetKind.SCHEDULE:
            who = [users.get(on_call.get(level.schedule_id))]
        elif level.target == TargetKind.USER:
            who = [users.get(level.user_id)]
        elif level.target == TargetKind.TEAM and level.team_id:
            groups = [level.team.group] if level.team else []
        elif level.target == TargetKind.TEAM_CONTACT:
            who = [users.get(subjects[subject_id])]
        who = [u for u in who if u is not None]
        try:
            with transaction.atomic():
                page = Page.objects.create(
                    escalation=escalation,
                    run=escalation.run,
                    round=round_,
                    level=position,
                    at=now,
                    recipients=[u.get_username() for u in who] + [str(g) for g in groups],
                )
        except IntegrityError:
            continue  # paged already by another sweep: its own caller set the next step
        last = index + 1 >= len(levels) * (escalation.policy.repeat + 1)
        result[subject_id] = Paged(
            page=page,
            users=who,
            groups=groups,
            next_at=None if last else now + timedelta(minutes=level.wait_minutes),
            level=level,
        )
    return result


# --- the acknowledge link ---------------------------------------------------------------------

ACK_SALT = "oncall.acknowledge"


def ack_token(page, user):
    """A signed, expiring token for one person to acknowledge through one page."""
    return signing.TimestampSigner(salt=ACK_SALT).sign_object(
        {"p": page.pk, "u": user.pk, "s": page.escalation.subject_id}
    )


class LinkRefused(Exception):
    pass


def read_ack_token(token, *, max_age):
    """(page, user) for a valid token; raises LinkRefused with the reason (forged, expired,
    used already). Does not use the link: ``use_link`` does, under the caller's lock."""
    from django.utils.translation import gettext as _

    try:
        value = signing.TimestampSigner(salt=ACK_SALT).unsign_object(token, max_age=max_age)
    except signing.SignatureExpired:
        raise LinkRefused(_("This acknowledge link has expired.")) from None
    except signing.BadSignature:
        raise LinkRefused(_("This acknowledge link is not valid.")) from None
    page = Page.objects.select_related("escalation").filter(pk=value.get("p")).first()
    user = get_user_model().objects.filter(pk=value.get("u"), is_active=True).first()
    if page is None or user is None or page.escalation.subject_id != value.get("s"):
        raise LinkRefused(_("This acknowledge link is not valid."))
    if page.used_at is not None:
        raise LinkRefused(_("This acknowledge link was used already."))
    return page, user


def use_link(page, *, now):
    """Mark the link used (single-use); False when someone used it meanwhile."""
    return bool(Page.objects.filter(pk=page.pk, used_at__isnull=True).update(used_at=now))
