"""Data the benchmarks generate: a small catalog through the ORM, and incidents by the million
through PostgreSQL COPY, written straight into ``incidents_incident`` with a realistic mix of
states, priorities, owners, targets and deadlines."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
from dataclasses import dataclass, field

from bench.common import analyze, copy_rows, table_of
from incidents.priority import DEFAULT_PRIORITY_MATRIX

# impact × urgency → priority: the product's default matrix.
MATRIX = DEFAULT_PRIORITY_MATRIX
# Business-hours targets per priority: (response, resolution).
STANDARD_TARGETS = {
    1: (dt.timedelta(minutes=15), dt.timedelta(hours=4)),
    2: (dt.timedelta(minutes=30), dt.timedelta(hours=8)),
    3: (dt.timedelta(hours=2), dt.timedelta(days=1)),
    4: (dt.timedelta(hours=4), dt.timedelta(days=3)),
    5: (dt.timedelta(hours=8), dt.timedelta(days=5)),
}
PREMIUM_TARGETS = {
    1: (dt.timedelta(minutes=10), dt.timedelta(hours=2)),
    2: (dt.timedelta(minutes=15), dt.timedelta(hours=4)),
    3: (dt.timedelta(hours=1), dt.timedelta(hours=12)),
    4: (dt.timedelta(hours=2), dt.timedelta(days=1)),
    5: (dt.timedelta(hours=4), dt.timedelta(days=2)),
}
SERVICE_NAMES = [
    "Website", "Checkout", "Payments", "Database", "Sign-in", "Search", "Email delivery", "CDN",
    "DNS", "Mobile API", "Reporting", "Billing", "Support portal", "File storage", "Messaging",
    "Analytics", "Partner API", "Status API", "Backups", "VPN",
]  # fmt: skip
SYMPTOMS = [
    "elevated error rate", "slow responses", "timeouts for some customers", "unavailable",
    "intermittent 502s", "login loop", "stale data", "certificate warning", "queue backlog",
    "failed deliveries", "degraded performance in eu-west", "high latency",
]  # fmt: skip

INCIDENT_COLUMNS = [
    "title", "description", "state", "impact", "urgency", "priority", "source", "is_major",
    "hold_reason", "resolution_code", "resolution_notes", "public_status", "published_at",
    "opened_at", "acknowledged_at", "resolved_at", "closed_at", "response_target",
    "resolution_target", "response_due_at", "resolve_due_at", "response_breached_at",
    "resolve_breached_at", "next_sla_check_at", "version", "updated_at", "assignee_id",
    "assignment_group_id", "organization_id", "sla_policy_id", "responded_at",
    "first_resolved_at", "sla_explain", "sla_stale", "sla_error", "sla_computed_at",
    "is_confidential",
]  # fmt: skip


@dataclass
class Catalog:
    office: object = None
    always: object = None
    standard: object = None
    premium: object = None
    services: list = field(default_factory=list)
    organizations: list = field(default_factory=list)
    users: list = field(default_factory=list)
    groups: list = field(default_factory=list)


def make_catalog(*, services=20, organizations=50, users=12) -> Catalog:
    """A catalog like a mid-size desk's: Bucharest business hours with the Romanian holidays and
    a 24×7 calendar, a Standard (default) and a Premium policy, services in a dependency chain
    (each depends on the next), customer organisations, agents and four teams."""
    from django.contrib.auth.models import Group, User

    from services.demo import romanian_public_holidays
    from services.models import (
        BusinessCalendar,
        Holiday,
        Organization,
        Service,
        ServiceDependency,
        SlaPolicy,
        SlaTarget,
        Team,
    )

    cat = Catalog()
    cat.office = BusinessCalendar.objects.create(
        name="Bucharest business hours", time_zone="Europe/Bucharest"
    )
    for weekday in range(5):
        cat.office.hours.create(weekday=weekday, opens_at=dt.time(9), closes_at=dt.time(17))
    Holiday.objects.bulk_create(
        Holiday(calendar=cat.office, date=day, name=name[:100])
        for year in range(2024, 2031)
        for day, name in romanian_public_holidays(year).items()
    )
    cat.always = BusinessCalendar.objects.create(name="24×7", time_zone="UTC", is_24x7=True)
    cat.standard = SlaPolicy.objects.create(name="Standard", calendar=cat.office, is_default=True)
    cat.premium = SlaPolicy.objects.create(name="Premium 24×7", calendar=cat.always)
    for policy, targets in ((cat.standard, STANDARD_TARGETS), (cat.premium, PREMIUM_TARGETS)):
        SlaTarget.objects.bulk_create(
            SlaTarget(policy=policy, priority=p, response_target=r, resolution_target=s)
            for p, (r, s) in targets.items()
        )
    cat.groups = [Group.objects.get_or_create(name=f"Team {n}")[0] for n in "ABCD"]
    cat.users = [
        User.objects.create_user(
            f"agent{n}", f"agent{n}@desk.example.com", "bench-password", is_staff=True
        )
        for n in range(users)
    ]
    # Agents, as the workflow checks: the seeded group gives them the permission to work.
    Group.objects.get(name="Service desk agent").user_set.add(*cat.users)
    for n, group in enumerate(cat.groups):
        group.user_set.add(*cat.users[n::4])
        Team.objects.create(
            group=group, email=f"team{n}@desk.example.com", escalation_contact=cat.users[n]
        )
    names = (SERVICE_NAMES * (services // len(SERVICE_NAMES) + 1))[:services]
    cat.services = Service.objects.bulk_create(
        Service(
            name=name if n < len(SERVICE_NAMES) else f"{name} {n}",
            slug=f"service-{n}",
            display_order=n,
            default_sla_policy=cat.premium if n % 4 == 0 else None,
            owner_team=cat.groups[n % 4],
        )
        for n, name in enumerate(names)
    )
    ServiceDependency.objects.bulk_create(
        ServiceDependency(service=a, depends_on=b)
        for a, b in zip(cat.services, cat.services[1:], strict=False)
    )
    cat.organizations = Organization.objects.bulk_create(
        Organization(name=f"Customer {n:04d}", slug=f"customer-{n:04d}")
        for n in range(organizations)
    )
    return cat


@contextlib.contextmanager
def bulk_load(table):
    """Load ``table`` the fast way: its secondary indexes dropped and rebuilt afterwards from
    their own definitions (so the schema ends as migrated), and the foreign-key triggers
    skipped for rows whose references are valid by construction (the bench database is a
    superuser's scratch)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            [table],
        )
        indexes = cursor.fetchall()
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for _name, definition in indexes:
                cursor.execute(definition)


OPEN_MIX = {"new": 25, "acknowledged": 60, "on_hold": 15}
HISTORY_MIX = {"new": 1, "acknowledged": 3, "on_hold": 1, "resolved": 15, "closed": 80}


def incident_rows(count, *, catalog: Catalog, now, mix=OPEN_MIX, due=0, seed=1):
    """Tuples for INCIDENT_COLUMNS. Open incidents were opened in the last 60 days
    and have their next SLA check months ahead (on hold: none), except the first ``due`` ones,
    which are unacknowledged P1/P2 on the Premium 24×7 policy, opened two days ago, whose
    response and resolution breaches (and warnings) are all due now. Resolved and closed ones
    spread over three years."""
    rng = random.Random(seed)
    random_, randrange, choice = rng.random, rng.randrange, rng.choice
    titles = [f"{s}: {y}" for s in SERVICE_NAMES for y in SYMPTOMS]
    states = rng.choices(list(mix), weights=list(mix.values()), k=count)
    users = [u.pk for u in catalog.users]
    groups = [g.pk for g in catalog.groups]
    orgs = [o.pk for o in catalog.organizations]
    policies = [(catalog.standard.pk, STANDARD_TARGETS), (catalog.premium.pk, PREMIUM_TARGETS)]
    explains = {
        (policy.pk, priority): _explain(policy, catalog.services[0], targets[priority])
        for policy, targets in (
            (catalog.standard, STANDARD_TARGETS),
            (catalog.premium, PREMIUM_TARGETS),
        )
        for priority in targets
    }
    levels = [1, 2, 2, 3, 3, 3]
    sources = ("admin", "admin", "api", "alert", "alert", "email", "phone")
    minute = dt.timedelta(minutes=1)
    for n in range(count):
        is_due = n < due
        state = "new" if is_due else states[n]
        impact, urgency = choice(levels), choice(levels)
        if is_due:
            impact, urgency = 1, choice((1, 2))
        priority = MATRIX[impact, urgency]
        policy_id, targets = policies[1] if is_due or random_() < 0.3 else policies[0]
        response, resolution = targets[priority]
        is_open = state in OPEN_MIX
        if is_due:
            opened = now - dt.timedelta(days=2, minutes=randrange(60))
        elif is_open:
            opened = now - randrange(60 * 24 * 60) * minute
        else:
            opened = now - randrange(3 * 365 * 24 * 60) * minute
        acknowledged = resolved = closed = None
        if state != "new":
            acknowledged = opened + randrange(1, 120) * minute
        if state in ("resolved", "closed"):
            resolved = acknowledged + randrange(10, 5 * 24 * 60) * minute
        if state == "closed":
            closed = resolved + randrange(1, 8) * 1440 * minute
        response_due = opened + response
        resolve_due = opened + resolution
        next_check = None
        if is_due:
            next_check = now - randrange(1, 30) * minute
        elif is_open and state != "on_hold":
            next_check = now + randrange(30 * 24 * 60, 400 * 24 * 60) * minute
        published = opened + 5 * minute if random_() < 0.2 else None
        public_status = ""
        if published:
            public_status = "resolved" if resolved else choice(("investigating", "identified"))
        assignee = choice(users) if state != "new" or random_() < 0.3 else None
        row = (
            titles[n % len(titles)],
            "Customers report the problem; see the timeline for what we know.",
            state,
            impact,
            urgency,
            priority,
            choice(sources),
            random_() < 0.01,
            "Waiting on the customer" if state == "on_hold" else "",
            choice(("fixed", "workaround", "duplicate")) if resolved else "",
            "Restarted the failing nodes." if resolved else "",
            public_status,
            published,
            opened,
            acknowledged,
            resolved,
            closed,
            response,
            resolution,
            None if state == "on_hold" else response_due,
            None if state == "on_hold" else resolve_due,
            response_due if acknowledged and acknowledged > response_due else None,
            resolve_due if resolved and resolved > resolve_due else None,
            next_check,
            1 + (state != "new") + 2 * (resolved is not None) + (closed is not None),
            closed or resolved or acknowledged or opened,
            assignee,
            choice(groups),
            choice(orgs) if random_() < 0.7 else None,
            policy_id,
            acknowledged or resolved,
            resolved,
            explains[policy_id, priority],
            False,
            "",
            now,
            False,  # is_confidential
        )
        yield row


def _explain(policy, service, targets):
    """``Incident.sla_explain`` as the workflow writes it for one policy through one service."""
    from psycopg.types.json import Jsonb

    response, resolution = targets
    candidate = {
        "policy": policy.pk,
        "policy_name": policy.name,
        "service": service.pk,
        "service_name": service.name,
        "calendar": policy.calendar_id,
        "calendar_name": policy.calendar.name,
    }
    return Jsonb(
        {
            "candidates": [
                {
                    **candidate,
                    "response": response.total_seconds(),
                    "resolution": resolution.total_seconds(),
                }
            ],
            "response": {**candidate, "target": response.total_seconds()},
            "resolution": {**candidate, "target": resolution.total_seconds()},
        }
    )


def copy_incidents(count, *, catalog, now, mix=OPEN_MIX, due=0, seed=1, desc="incidents"):
    """COPY ``count`` generated incidents in; returns how many."""
    from incidents.models import Incident

    with bulk_load(table_of(Incident)):
        written = copy_rows(
            table_of(Incident),
            INCIDENT_COLUMNS,
            incident_rows(count, catalog=catalog, now=now, mix=mix, due=due, seed=seed),
            total=count,
            desc=desc,
        )
    analyze(table_of(Incident))
    return written
