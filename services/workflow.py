"""Writes to the catalog that carry a rule: service status and maintenance transitions."""

import logging
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, OuterRef, Subquery, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _

from itsm.publishing import public_side_changed
from itsm.rows import read_together
from services.announcements import announce_maintenance_status, withdraw_queued_announcements
from services.graph import dependency_ids
from services.history import Impact, Interval, status_intervals, worst_impact
from services.models import (
    IMPACT_CAUSES,
    BusinessHours,
    CauseKind,
    Holiday,
    MaintenanceStatus,
    MaintenanceWindow,
    Service,
    ServiceDependency,
    ServiceImpact,
    ServiceStatus,
    ServiceStatusInterval,
    SlaTarget,
    check_windows_do_not_overlap,
)

logger = logging.getLogger(__name__)


class CatalogError(Exception):
    """A change the catalog refuses; the message is for a person, ``field`` the input it is
    about (so a form can show it there)."""

    def __init__(self, message, *, field=None):
        super().__init__(message)
        self.field = field


def check_dependency(*, service, depends_on):
    """Refuse ``service`` depending on ``depends_on`` if that would close a cycle (a
    ``ValidationError`` on ``depends_on``), and hold what the answer rests on until the caller's
    transaction ends. Must run inside ``transaction.atomic()``.

    A cycle through the new edge needs a path from ``depends_on`` back to ``service``. So this
    locks ``service`` and everything ``depends_on`` needs (transitively), in id order, then looks
    again until the set it holds no longer grows. A concurrent edit whose edge could complete
    such a path has its own ``service`` among the rows held here (or holds ours), so one of the
    two waits for the other to commit and then sees its edge: two edits can no longer each pass
    their check and together make a cycle.
    """
    if service.pk == depends_on.pk:
        raise ValidationError({"depends_on": _("A service cannot depend on itself.")})
    held = set()
    while True:
        needed = dependency_ids([depends_on.pk])
        if service.pk in needed:
            raise ValidationError(
                {
                    "depends_on": _(
                        "%(target)s already depends on %(service)s, directly or through "
                        "other services; this dependency would make a cycle."
                    )
                    % {"target": depends_on, "service": service}
                }
            )
        missing = ({service.pk} | needed) - held
        if not missing:
            return
        # Evaluated here: the lock is taken by running the query.
        list(
            Service.objects.select_for_update()
            .filter(pk__in=missing)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        held |= missing


def edit_dependencies(*, service, add=(), remove=()):
    """``service`` now also depends on the services in ``add`` and no longer on those in
    ``remove`` (services or ids). Each addition passes :func:`check_dependency` under its locks,
    in the same transaction as the write. Raises ``ValidationError`` (nothing changed) on a
    cycle."""
    with transaction.atomic():
        removed = {getattr(s, "pk", s) for s in remove} - {s.pk for s in add}
        if removed:
            ServiceDependency.objects.filter(service=service, depends_on__in=removed).delete()
        existing = set(
            ServiceDependency.objects.filter(service=service).values_list("depends_on", flat=True)
        )
        new = sorted({s.pk: s for s in add if s.pk not in existing}.values(), key=lambda s: s.pk)
        for other in new:
            check_dependency(service=service, depends_on=other)
        ServiceDependency.objects.bulk_create(
            ServiceDependency(service=service, depends_on=other) for other in new
        )
        public_side_changed()  # "depends on ..." on the status page


def add_dependency(*, service, depends_on):
    """``service`` depends on ``depends_on`` from now on (see :func:`edit_dependencies`)."""
    edit_dependencies(service=service, add=[depends_on])


def _cause(cause):
    kind, cause_id = cause
    if kind not in IMPACT_CAUSES:
        raise ValueError(f"{kind!r} is not a cause of impacts")
    return kind, int(cause_id)


def set_impacts(cause, statuses, *, at=None):
    """``cause`` (kind, id), e.g. ``("incident", 42)``, now puts each service of ``statuses``
    ({service or id: status}) in that status, and no other service. Impacts that are gone or
    changed end at ``at``, new ones start there, and the services' statuses follow in the same
    transaction. Returns the ids of the services whose status changed."""
    kind, cause_id = _cause(cause)
    at = at or timezone.now()
    statuses = {getattr(s, "pk", s): status for s, status in statuses.items()}
    # No savepoint inside the caller's transaction: two statements fewer per transition.
    with transaction.atomic(savepoint=False):
        if not statuses and connection.vendor == "postgresql":
            return _end_all_and_refresh(kind, cause_id, at)
        if not statuses:
            touched = _end_all(kind, cause_id, at)
        else:
            mine = ServiceImpact.objects.filter(
                cause_kind=kind, cause_id=cause_id, valid_to__isnull=True
            )
            current = dict(mine.values_list("service_id", "status"))
            ending = [pk for pk, status in current.items() if statuses.get(pk) != status]
            starting = {pk: s for pk, s in statuses.items() if current.get(pk) != s}
            if ending:
                mine.filter(service_id__in=ending).update(valid_to=at)
            if starting:
                ServiceImpact.objects.bulk_create(
                    ServiceImpact(
                        service_id=pk,
                        cause_kind=kind,
                        cause_id=cause_id,
                        status=status,
                        valid_from=at,
                    )
                    for pk, status in starting.items()
                )
            touched = {*ending, *starting}
        return refresh_service_status(touched, at=at)


def _end_all(kind, cause_id, at):
    """End every open impact of a cause; the ids of their services. One statement: the ORM's
    UPDATE does not return rows, PostgreSQL and SQLite (3.35+) both do with RETURNING."""
    table = ServiceImpact._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET valid_to = %s "  # noqa: S608 (table name from the model)
            "WHERE cause_kind = %s AND cause_id = %s AND valid_to IS NULL RETURNING service_id",
            [at, kind, cause_id],
        )
        return {row[0] for row in cursor.fetchall()}


_END_ALL_AND_LOCK_SQL = """
WITH ended AS (
    UPDATE services_serviceimpact SET valid_to = %s
    WHERE cause_kind = %s AND cause_id = %s AND valid_to IS NULL
    RETURNING service_id
)
SELECT s.id, s.status, s.status_pinned, s.created_at,
    (SELECT i.cause_kind FROM services_servicestatusinterval AS i
     WHERE i.service_id = s.id AND i.valid_to IS NULL LIMIT 1),
    (SELECT i.cause_id FROM services_servicestatusinterval AS i
     WHERE i.service_id = s.id AND i.valid_to IS NULL LIMIT 1)
FROM services_service AS s
WHERE s.id IN (SELECT service_id FROM ended)
ORDER BY s.id
FOR UPDATE OF s
"""


# The open impacts on the services whose impacts ``_END_ALL_AND_LOCK_SQL`` just ended (at
# ``at``): what their status is derived from now. Sent behind it in the same round trip, it is
# a statement of its own, so its snapshot is taken after the lock is granted (see
# ``refresh_service_status``).
_OPEN_IMPACTS_OF_ENDED_SQL = """
SELECT o.service_id, o.status, o.cause_kind, o.cause_id, o.valid_from
FROM services_serviceimpact AS o
WHERE o.valid_to IS NULL AND o.service_id IN (
    SELECT e.service_id FROM services_serviceimpact AS e
    WHERE e.cause_kind = %s AND e.cause_id = %s AND e.valid_to = %s
)
"""


def _end_all_and_refresh(kind, cause_id, at):
    """``_end_all`` and ``refresh_service_status`` of its services on PostgreSQL: the end of the
    impacts locks their services in one statement (the UPDATE as a data-modifying CTE), and the
    read of what is left hurting them rides in the same round trip: one where there were
    three. Returns the ids whose status changed."""
    assert ServiceImpact._meta.db_table == "services_serviceimpact"  # noqa: S101 (names in the SQL)
    locked, impacts = read_together(
        [
            (_END_ALL_AND_LOCK_SQL, [at, kind, cause_id]),
            (_OPEN_IMPACTS_OF_ENDED_SQL, [kind, cause_id, at]),
        ]
    )
    return _refresh_locked(locked, at=at, open_impacts=impacts)


def end_impacts(cause, *, at=None):
    """``cause`` no longer hurts any service (the incident is resolved, the maintenance over)."""
    return set_impacts(cause, {}, at=at)


def derived_statuses(service_ids, open_impacts=None):
    """{service id: (status, cause kind, cause id)} from the services' open impacts: the worst
    one, ("operational", "", None) when none. One query whatever the number of services, none
    when the caller read ``open_impacts`` (service, status, cause kind, cause id, from)."""
    found = {pk: [] for pk in service_ids}
    if open_impacts is None:
        open_impacts = ServiceImpact.objects.filter(
            service_id__in=found, valid_to__isnull=True
        ).values_list("service_id", "status", "cause_kind", "cause_id", "valid_from")
    for service_id, status, kind, cause_id, since in open_impacts:
        if service_id in found:
            found[service_id].append(Impact(status, kind, cause_id, since, None))
    derived = {}
    for pk, impacts in found.items():
        worst = worst_impact(impacts)
        derived[pk] = (
            (worst.status, worst.cause_kind, worst.cause_id)
            if worst
            else (ServiceStatus.OPERATIONAL, "", None)
        )
    return derived


def _locked_services(service_ids):
    """Lock the services (in id order, so two writers never deadlock) and read each one's status,
    pin, creation and the cause of its current interval: one query."""
    current = ServiceStatusInterval.objects.filter(service=OuterRef("pk"), valid_to__isnull=True)
    return (
        Service.objects.select_for_update(of=("self",))
        .filter(pk__in=service_ids)
        .order_by("pk")
        .annotate(
            open_kind=Subquery(current.values("cause_kind")[:1]),
            open_cause=Subquery(current.values("cause_id")[:1]),
        )
        .values_list("pk", "status", "status_pinned", "created_at", "open_kind", "open_cause")
    )


def _move_statuses(moves, *, at):
    """Apply {service id: (status, cause kind, cause id, created_at, old status, had an
    interval)}: one UPDATE of the services, one that ends their current intervals, one INSERT
    of the new ones."""
    if not moves:
        return
    public_side_changed()
    if connection.vendor == "postgresql":
        _move_statuses_in_one_statement(moves, at=at)
        return
    by_status = {}
    for pk, move in moves.items():
        by_status.setdefault(move[0], []).append(pk)
    # One UPDATE whatever the number of services, one WHEN per new status (five at most).
    Service.objects.filter(pk__in=moves).update(
        status=Case(*(When(pk__in=pks, then=Value(s)) for s, pks in by_status.items())),
        updated_at=at,
    )
    ServiceStatusInterval.objects.filter(service_id__in=moves, valid_to__isnull=True).update(
        valid_to=at
    )
    rows = [
        ServiceStatusInterval(
            service_id=pk,
            status=status,
            cause_kind=kind,
            cause_id=cause_id,
            valid_from=valid_from,
            valid_to=valid_to,
        )
        for pk, status, kind, cause_id, valid_from, valid_to in _interval_rows(moves, at)
    ]
    ServiceStatusInterval.objects.bulk_create(rows)


def _interval_rows(moves, at):
    """The status intervals ``moves`` starts: (service, status, cause kind, cause id, from,
    to). A service without history yet (created before history was kept, or in bulk) first
    gets what it was until now: its status column."""
    rows = []
    for pk, (status, kind, cause_id, created_at, old_status, had_interval) in moves.items():
        if not had_interval and created_at < at:
            rows.append((pk, old_status, "", None, created_at, at))
        rows.append((pk, status, kind, cause_id, at, None))
    return rows


_MOVE_STATUSES_SQL = """
WITH moved AS (
    UPDATE services_service AS s SET status = v.status, updated_at = %(at)s
    FROM unnest(%(ids)s::bigint[], %(statuses)s::varchar[]) AS v(id, status)
    WHERE s.id = v.id
), ended AS (
    UPDATE services_servicestatusinterval SET valid_to = %(at)s
    WHERE service_id = ANY(%(ids)s::bigint[]) AND valid_to IS NULL
    RETURNING 1
)
INSERT INTO services_servicestatusinterval
    (service_id, status, cause_kind, cause_id, valid_from, valid_to)
SELECT * FROM unnest(
    %(r_service)s::bigint[], %(r_status)s::varchar[], %(r_kind)s::varchar[],
    %(r_cause)s::bigint[], %(r_from)s::timestamptz[], %(r_to)s::timestamptz[]
)
-- An InitPlan, evaluated before the first row is inserted: the open intervals are ended
-- before their successors start (one open interval per service is a unique constraint).
WHERE (SELECT count(*) FROM ended) >= 0
"""


def _move_statuses_in_one_statement(moves, *, at):
    """``_move_statuses`` on PostgreSQL: the services' UPDATE, the end of their current
    intervals and the new intervals in one statement (data-modifying CTEs), one round trip
    where there were three."""
    assert Service._meta.db_table == "services_service"  # noqa: S101 (names in the SQL)
    assert ServiceStatusInterval._meta.db_table == "services_servicestatusinterval"  # noqa: S101
    rows = _interval_rows(moves, at)
    columns = list(zip(*rows, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            _MOVE_STATUSES_SQL,
            {
                "at": at,
                "ids": list(moves),
                "statuses": [m[0] for m in moves.values()],
                **{
                    name: list(values)
                    for name, values in zip(
                        ("r_service", "r_status", "r_kind", "r_cause", "r_from", "r_to"),
                        columns,
                        strict=True,
                    )
                },
            },
        )


def refresh_service_status(service_ids, *, at=None):
    """Set each unpinned service's status to the worst among its open impacts (``operational``
    when none) and record the change in its status history. Returns the ids whose status
    changed."""
    service_ids = set(service_ids)
    if not service_ids:
        return set()
    at = at or timezone.now()
    # Lock first, then read the impacts in a statement of its own: its snapshot is taken after
    # the lock is granted, so it sees the impacts of a writer that held the lock and committed
    # (read in the locking statement itself, they would be missed) and the last writer sets the
    # status from all of them.
    return _refresh_locked(list(_locked_services(service_ids)), at=at)


def _refresh_locked(services, *, at, open_impacts=None):
    """``refresh_service_status`` of ``services``, the rows of ``_locked_services`` (locked by
    the caller's statement); ``open_impacts``: their open impacts, when the caller read them
    after the lock (``derived_statuses``)."""
    if not services:
        return set()
    wanted = derived_statuses({row[0] for row in services}, open_impacts)
    moves = {}
    for pk, status, pinned, created_at, open_kind, open_cause in services:
        if pinned:
            continue
        new_status, kind, cause_id = wanted[pk]
        if (new_status, kind, cause_id) != (status, open_kind, open_cause):
            moves[pk] = (new_status, kind, cause_id, created_at, status, open_kind is not None)
    _move_statuses(moves, at=at)
    return {pk for pk, m in moves.items() if m[0] != m[4]}


def set_service_status(service, *, status, pinned, at=None):
    """Staff set a status by hand. Pinned, it stays until unpinned (and the history says staff
    set it); unpinned, the derived status takes over again at once."""
    at = at or timezone.now()
    with transaction.atomic():
        ((pk, old, _pinned, created_at, open_kind, _cause_id),) = _locked_services([service.pk])
        Service.objects.filter(pk=pk).update(status_pinned=pinned)
        if pinned and (old, open_kind) != (status, CauseKind.PIN):
            _move_statuses(
                {pk: (status, CauseKind.PIN, None, created_at, old, open_kind is not None)}, at=at
            )
        elif not pinned:
            refresh_service_status([pk], at=at)
    service.refresh_from_db(fields=["status", "status_pinned"])
    return service


def rebuild_status_history(service_ids=None, *, now=None):
    """Recompute the status history of the services (all by default) from their impacts, for
    writers that do not play events in time order (the demo). Pinned services keep their
    status: the history ends with the pin, from ``now``."""
    now = now or timezone.now()
    services = Service.objects.all()
    if service_ids is not None:
        services = services.filter(pk__in=service_ids)
    with transaction.atomic():
        services = list(services.select_for_update().order_by("pk"))
        impacts = {s.pk: [] for s in services}
        for i in ServiceImpact.objects.filter(service_id__in=impacts):
            impacts[i.service_id].append(
                Impact(i.status, i.cause_kind, i.cause_id, i.valid_from, i.valid_to)
            )
        rows = []
        for service in services:
            since = min([service.created_at, *(i.valid_from for i in impacts[service.pk])])
            history = status_intervals(impacts[service.pk], since)
            if service.status_pinned:
                last = history.pop()
                if last.valid_from < now:
                    history.append(Interval(**{**last.__dict__, "valid_to": now}))
                history.append(Interval(service.status, CauseKind.PIN, None, now, None))
            rows += [ServiceStatusInterval(service=service, **h.__dict__) for h in history]
        ServiceStatusInterval.objects.filter(service__in=services).delete()
        ServiceStatusInterval.objects.bulk_create(rows)
    return len(rows)


_MAINTENANCE_MOVES = {
    MaintenanceStatus.IN_PROGRESS: {MaintenanceStatus.SCHEDULED},
    MaintenanceStatus.COMPLETED: {MaintenanceStatus.IN_PROGRESS},
    MaintenanceStatus.CANCELLED: {MaintenanceStatus.SCHEDULED},
}


# How far ahead a window may be planned. Beyond it a date is a typo (year 9999 was accepted
# once and broke the list's year drill-down), not a plan.
MAINTENANCE_HORIZON = timedelta(days=5 * 366)
MAINTENANCE_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)


def check_maintenance_schedule(scheduled_start, scheduled_end, *, now=None):
    """Refuse a schedule that cannot be meant: the end not after the start, or a date before
    2000 or more than five years ahead. Raises ``CatalogError`` naming the field."""
    latest = (now or timezone.now()) + MAINTENANCE_HORIZON
    for field, value in (("scheduled_start", scheduled_start), ("scheduled_end", scheduled_end)):
        if not MAINTENANCE_EARLIEST <= value <= latest:
            raise CatalogError(
                _("Choose a date between %(earliest)s and %(latest)s.")
                % {"earliest": MAINTENANCE_EARLIEST.date(), "latest": latest.date()},
                field=field,
            )
    if scheduled_end <= scheduled_start:
        raise CatalogError(_("The end must be after the start."), field="scheduled_end")


def schedule_maintenance(*, title, services, scheduled_start, scheduled_end, public_description=""):
    """Create a maintenance window and tell its subscribers."""
    check_maintenance_schedule(scheduled_start, scheduled_end)
    with transaction.atomic():
        window = MaintenanceWindow.objects.create(
            title=title,
            scheduled_start=scheduled_start,
            scheduled_end=scheduled_end,
            public_description=public_description,
        )
        window.services.set(services)
        announce_maintenance(window)
        public_side_changed()
    return window


def announce_maintenance(window):
    """Tell the subscribers of a newly scheduled window (its services must be set). Safe to
    call twice: the event key makes the second call a no-op."""
    if window.status == MaintenanceStatus.SCHEDULED:
        announce_maintenance_status(window)


def move_maintenance(window, *, to):
    """Start, complete or cancel a maintenance window; services follow, subscribers hear."""
    with transaction.atomic():
        window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
        if window.status not in _MAINTENANCE_MOVES.get(to, ()):
            raise CatalogError(
                _("A maintenance that is %(current)s cannot become %(to)s.")
                % {
                    "current": window.get_status_display(),
                    "to": MaintenanceStatus(to).label,
                }
            )
        window.status = to
        window.save(update_fields=["status"])
        public_side_changed()
        cause = (CauseKind.MAINTENANCE, window.pk)
        if to == MaintenanceStatus.CANCELLED:
            # Announcements still queued (the "scheduled" mail) are not sent for a window that
            # will not happen; the cancellation itself is announced below.
            withdraw_queued_announcements(window.pk)
        if to == MaintenanceStatus.IN_PROGRESS:
            services = window.services.values_list("pk", flat=True)
            set_impacts(cause, dict.fromkeys(services, ServiceStatus.UNDER_MAINTENANCE))
        else:
            end_impacts(cause)
        announce_maintenance_status(window)
    return window


# The moves the beat makes by itself: (from, to, the column that says when it is due).
_DUE_MAINTENANCE_MOVES = (
    (MaintenanceStatus.SCHEDULED, MaintenanceStatus.IN_PROGRESS, "scheduled_start"),
    (MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.COMPLETED, "scheduled_end"),
)


def start_and_end_maintenance(*, now=None, limit=500):
    """Start the scheduled windows whose start has come and complete those in progress whose
    end has come, through :func:`move_maintenance` (services follow, subscribers hear). Each
    window moves in a transaction of its own, claimed with ``skip_locked``: a window another
    sweep or a person is moving right now is left to them, and a second sweep running at once
    finds nothing to do. A window whose whole slot passed while nobody swept (beat was down)
    starts and completes in the same sweep, so its subscribers hear both. Returns
    ``(started ids, completed ids)``; at most ``limit`` of each per run (the next run goes on).
    """
    now = now or timezone.now()
    moved = {MaintenanceStatus.IN_PROGRESS: [], MaintenanceStatus.COMPLETED: []}
    for source, target, due_column in _DUE_MAINTENANCE_MOVES:
        tried = set()  # a window that failed is not tried again in this run
        while len(moved[target]) < limit:
            with transaction.atomic():
                window = (
                    MaintenanceWindow.objects.select_for_update(skip_locked=True)
                    .filter(status=source, **{f"{due_column}__lte": now})
                    .exclude(pk__in=tried)
                    .order_by(due_column, "pk")
                    .first()
                )
                if window is None:
                    break
                tried.add(window.pk)
                try:
                    # A savepoint: a failure undoes this window's move only, and the loop goes
                    # on with the next (one broken window must not hold up all the others).
                    with transaction.atomic():
                        move_maintenance(window, to=target)
                except Exception:
                    logger.exception("could not move maintenance %s to %s", window.pk, target)
                    continue
            moved[target].append(window.pk)
    return moved[MaintenanceStatus.IN_PROGRESS], moved[MaintenanceStatus.COMPLETED]


_EDITABLE_MAINTENANCE_FIELDS = (
    "title",
    "public_description",
    "scheduled_start",
    "scheduled_end",
    "services",
)


def edit_maintenance(window, *, changes):
    """Change a window's title, description, schedule or services (``changes``: field → new
    value; ``services`` an iterable of services). Services follow at once: of a window in
    progress, a removed service leaves maintenance and an added one enters it. Subscribers
    hear of a new schedule or new services (once per distinct schedule) while the window is
    scheduled or in progress; a finished window changes silently."""
    unknown = set(changes) - set(_EDITABLE_MAINTENANCE_FIELDS)
    if unknown:
        raise CatalogError(_("These fields cannot be edited: %s") % ", ".join(sorted(unknown)))
    with transaction.atomic():
        window = MaintenanceWindow.objects.select_for_update().get(pk=window.pk)
        before = set(window.services.values_list("pk", flat=True))
        for field in ("title", "public_description", "scheduled_start", "scheduled_end"):
            if field in changes:
                setattr(window, field, changes[field])
        schedule_moved = {"scheduled_start", "scheduled_end"} & set(changes)
        if schedule_moved:
            check_maintenance_schedule(window.scheduled_start, window.scheduled_end)
        window.save()
        public_side_changed()
        after = before
        if "services" in changes:
            after = {getattr(s, "pk", s) for s in changes["services"]}
            window.services.set(after)
        if window.status == MaintenanceStatus.IN_PROGRESS and after != before:
            # The impacts of this window are its services now: a removed one leaves maintenance.
            set_impacts(
                (CauseKind.MAINTENANCE, window.pk),
                dict.fromkeys(after, ServiceStatus.UNDER_MAINTENANCE),
            )
        if window.status in (MaintenanceStatus.SCHEDULED, MaintenanceStatus.IN_PROGRESS) and (
            schedule_moved or after != before
        ):
            # The schedule as it now is names the announcement: saving the same form twice
            # tells nobody twice; a real change is news.
            revision = "{}:{}:{}".format(
                window.scheduled_start.isoformat(),
                window.scheduled_end.isoformat(),
                ",".join(map(str, sorted(after))),
            )
            announce_maintenance_status(window, revision=revision)
    return window


# --- rows written from the API -----------------------------------------------------------------


def save_row(instance):
    """Validate a catalog row as the admin's form does (``full_clean``: fields, ``clean()``,
    unique and check constraints) and save it. Raises ``ValidationError`` with a message per
    field; nothing is written then. For rows whose every rule is the model's own
    (organisations, contacts, subscriptions)."""
    instance.full_clean()
    with transaction.atomic():
        instance.save()
    return instance


_SERVICE_ROW_FIELDS = (
    "name",
    "slug",
    "description",
    "group",
    "is_public",
    "owner_team",
    "criticality",
    "display_order",
    "default_sla_policy",
)


def save_service(service, *, dependencies=None, status=None, pinned=None):
    """Create or change a service in one transaction: its own fields (validated by
    ``full_clean``), then (when given) the services it depends on, exactly ``dependencies``
    (each new edge checked by :func:`check_dependency`), then a status set by staff
    (:func:`set_service_status`: pinned, it stays; unpinned, the derived status takes over).

    The row itself never writes ``status``: a status moves only with its history, and a
    concurrent incident's status must not be overwritten by this copy. Raises
    ``ValidationError`` per field (``dependencies``, ``status``); nothing changed then."""
    service.full_clean(exclude=["status", "status_pinned"])
    with transaction.atomic():
        if service.pk is None:
            service.save()
        else:
            service.save(update_fields=[*_SERVICE_ROW_FIELDS, "updated_at"])
        if dependencies is not None:
            wanted = {s.pk: s for s in dependencies}
            current = set(
                ServiceDependency.objects.filter(service=service).values_list(
                    "depends_on", flat=True
                )
            )
            try:
                edit_dependencies(
                    service=service,
                    add=[s for pk, s in wanted.items() if pk not in current],
                    remove=current - set(wanted),
                )
            except ValidationError as exc:
                raise ValidationError({"dependencies": exc.messages}) from None
        if status is not None or pinned is not None:
            service.refresh_from_db(fields=["status", "status_pinned"])
            set_service_status(
                service,
                status=status or service.status,
                pinned=service.status_pinned if pinned is None else pinned,
            )
    return service


def _replace_parts(owner_field, owner, model, parts, label):
    """Make ``parts`` (unsaved rows of ``model`` for ``owner``) exactly ``owner``'s, each
    validated by its own fields and ``clean()`` once the old rows are gone (a window's
    ``clean()`` compares it with the stored ones). Inside the caller's transaction: an error
    (naming the row, "P2: …") undoes the delete. The query sets' delete and bulk create tell the
    SLA engine."""
    model.objects.filter(**{owner_field: owner}).delete()
    messages = []
    for part in parts:
        setattr(part, owner_field, owner)
        try:
            part.full_clean(exclude=[owner_field], validate_unique=False)
        except ValidationError as exc:
            messages += [f"{label(part)}: {m}" for m in exc.messages]
    if messages:
        raise ValidationError(messages)
    model.objects.bulk_create(parts)


def save_sla_policy(policy, *, targets=None):
    """Create or change an SLA policy; ``targets`` (unsaved ``SlaTarget`` rows), when given,
    become exactly its targets, one per priority. Raises ``ValidationError`` per field
    (``targets`` for the rows); nothing changed then. Open incidents' deadlines follow (the
    models record the change for the SLA sweep)."""
    policy.full_clean()
    if targets is not None:
        priorities = [t.priority for t in targets]
        if len(priorities) != len(set(priorities)):
            raise ValidationError({"targets": [_("Give each priority at most one target.")]})
    with transaction.atomic():
        policy.save()
        if targets is not None:
            try:
                _replace_parts("policy", policy, SlaTarget, targets, lambda t: f"P{t.priority}")
            except ValidationError as exc:
                raise ValidationError({"targets": exc.messages}) from None
    return policy


def save_calendar(calendar, *, hours=None, holidays=None):
    """Create or change a business calendar; ``hours`` and ``holidays`` (unsaved rows), when
    given, become exactly its working windows and holidays. A weekday's windows may touch but
    not overlap, and a date is a holiday once. Raises ``ValidationError`` per field; nothing
    changed then."""
    calendar.full_clean()
    errors = {}
    if hours is not None:
        try:
            check_windows_do_not_overlap([(h.weekday, h.opens_at, h.closes_at) for h in hours])
        except ValidationError as exc:
            errors["hours"] = exc.messages
    if holidays is not None and len({h.date for h in holidays}) != len(holidays):
        errors["holidays"] = [_("Give each date once.")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        calendar.save()
        for field, model, parts, label in (
            ("hours", BusinessHours, hours, lambda h: h.get_weekday_display()),
            ("holidays", Holiday, holidays, lambda h: str(h.date)),
        ):
            if parts is None:
                continue
            try:
                _replace_parts("calendar", calendar, model, parts, label)
            except ValidationError as exc:
                raise ValidationError({field: exc.messages}) from None
    return calendar
