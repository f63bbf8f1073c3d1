"""Demo incident history for ``manage.py load_demo``: a few hundred incidents over the last
90 days, in every state and priority, with their timelines and SLA signals, plus one open
major incident with public updates. Everything goes through the workflow, backdated, so the
timeline, deadlines and breaches are what the product itself would have recorded.

Loaded once: when incidents already exist, the history is left as it is.
"""

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from incidents import workflow
from incidents.models import Incident, PublicStatus, ResolutionCode
from incidents.sweep import sweep_sla
from notifications.models import NotificationEvent
from notifications.outbox import discard_unsent
from services.models import ServiceStatus
from services.workflow import rebuild_status_history

HISTORY_SIZE = 300
SEED = 20261127

TITLES = [
    "{service}: elevated error rate",
    "{service} slow for some customers",
    "{service} unavailable in one region",
    "Timeouts calling {service}",
    "{service}: certificate about to expire",
    "{service} returns stale data",
    "Login loop reported on {service}",
    "{service} queue backlog growing",
    "Disk almost full on {service} nodes",
    "{service}: failed deployment rolled back",
]

NOTES = [
    "Looking at the dashboards.",
    "Correlates with the 14:00 deployment.",
    "Waiting for the vendor to confirm.",
    "Restarted two pods; watching error rate.",
    "Customer confirmed the symptom.",
]

HISTORY_CHUNK = 100  # the progress bar moves once per chunk of incidents
STEPS = [
    *[("incident history", None)] * (HISTORY_SIZE // HISTORY_CHUNK),
    ("major incident", None),
    ("SLA sweep", None),
]


def load_incident_demo(catalog, progress):
    if Incident.objects.exists():
        for _step in STEPS:
            progress.update(1)
        rebuild_status_history()  # the catalog step may have moved the maintenance windows
        return
    rng = random.Random(SEED)
    now = timezone.now().replace(microsecond=0)
    agents = list(catalog.agents.values())
    teams = list(catalog.teams.values())
    services = list(catalog.services.values())
    organizations = list(catalog.organizations.values())
    with transaction.atomic():
        progress.set_description("incident history")
        opens = sorted(
            now - dt.timedelta(minutes=rng.randint(30, 90 * 24 * 60)) for _ in range(HISTORY_SIZE)
        )
        for number, opened_at in enumerate(opens, start=1):
            _one_incident(rng, opened_at, now, agents, teams, services, organizations)
            if number % HISTORY_CHUNK == 0:
                progress.update(1)
        # History is history: nobody is mailed today about what happened weeks ago (and no
        # worker expands these events into rows once this transaction commits).
        discard_unsent(NotificationEvent.objects.all())

        progress.set_description("major incident")
        _major_incident(now, agents, teams, catalog)
        progress.update(1)

        progress.set_description("SLA sweep")
        sweep_sla(now=now)
        progress.update(1)
        # The incidents overlap in time but were played one after another, so the status
        # intervals written on the way are out of time order: rebuild them from the impacts.
        rebuild_status_history(now=now)


def _one_incident(rng, opened_at, now, agents, teams, services, organizations):
    service = rng.choice(services)
    agent = rng.choice(agents) if agents else None
    status = rng.choice(
        [
            ServiceStatus.DEGRADED_PERFORMANCE,
            ServiceStatus.PARTIAL_OUTAGE,
            ServiceStatus.MAJOR_OUTAGE,
        ]
    )
    incident = workflow.create_incident(
        actor=agent,
        title=rng.choice(TITLES).format(service=service.name),
        description="Reported by monitoring and confirmed by the desk.",
        impact=rng.randint(1, 3),
        urgency=rng.randint(1, 3),
        services={service: status},
        organization=rng.choice(organizations) if organizations and rng.random() < 0.4 else None,
        source=rng.choice(["admin", "alert", "alert", "api", "email", "phone"]),
        assignment_group=rng.choice(teams) if teams else None,
        now=opened_at,
    )
    age = now - opened_at
    # Most old incidents are closed; recent ones are spread over every state.
    if age > dt.timedelta(days=7):
        fate = rng.choices(["closed", "resolved", "on_hold"], [88, 11, 1])[0]
    else:
        fate = rng.choices(
            ["new", "acknowledged", "on_hold", "resolved", "closed"], [1, 2, 1, 4, 4]
        )[0]
    if fate == "new":
        return

    clock = opened_at
    span = min(age, dt.timedelta(hours=rng.choice([1, 2, 6, 12, 48])))

    def step(fraction, sweep=False):
        nonlocal clock
        clock = min(now, max(clock + dt.timedelta(seconds=1), opened_at + span * fraction))
        if sweep:  # let the SLA engine flag what this incident breached before this step
            sweep_sla(now=clock)
        return clock

    incident = workflow.acknowledge(
        incident, actor=agent, now=step(rng.uniform(0.02, 0.3), sweep=True)
    )
    if rng.random() < 0.3:
        workflow.post_update(incident, actor=agent, body=rng.choice(NOTES), now=step(0.35))
    if rng.random() < 0.25:
        workflow.post_update(
            incident,
            actor=agent,
            body=f"We are investigating reports of problems with {service.name}.",
            is_public=True,
            public_status=PublicStatus.INVESTIGATING,
            now=step(0.4),
        )
    if fate == "on_hold":
        workflow.hold(incident, actor=agent, reason="Waiting for the customer", now=step(0.5))
        return
    if fate == "acknowledged":
        return
    incident = workflow.resolve(
        incident,
        actor=agent,
        code=rng.choice(ResolutionCode.values),
        notes="Root cause addressed; monitoring is back to normal.",
        now=step(1.0, sweep=True),
    )
    if fate == "closed":
        # Closed a day after it was resolved, or now if that day has not passed yet.
        workflow.close(incident, actor=agent, now=min(now, clock + dt.timedelta(days=1)))


def _major_incident(now, agents, teams, catalog):
    payments = catalog.services.get("payments") or next(iter(catalog.services.values()))
    commander = agents[0] if agents else None
    lead = agents[1] if len(agents) > 1 else commander
    opened = now - dt.timedelta(minutes=50)
    incident = workflow.create_incident(
        actor=commander,
        title=f"{payments.name}: card payments failing for most customers",
        description="Card authorisations time out at the payment gateway.",
        impact=1,
        urgency=1,
        services={payments: ServiceStatus.MAJOR_OUTAGE},
        source="alert",
        assignee=commander,
        assignment_group=teams[0] if teams else None,
        is_major=True,
        commander=commander,
        communications_lead=lead,
        now=opened,
    )
    incident = workflow.acknowledge(incident, actor=commander, now=opened + dt.timedelta(minutes=4))
    workflow.post_update(
        incident,
        actor=lead,
        is_public=True,
        public_status=PublicStatus.INVESTIGATING,
        body="We are investigating failed card payments. Other payment methods work.",
        now=opened + dt.timedelta(minutes=10),
    )
    workflow.post_update(
        incident,
        actor=commander,
        body="Gateway TLS handshakes failing since 09:12.",
        now=opened + dt.timedelta(minutes=20),
    )
    workflow.post_update(
        incident,
        actor=lead,
        is_public=True,
        public_status=PublicStatus.IDENTIFIED,
        body="We found the cause at our payment provider and are working with them on a fix.",
        now=opened + dt.timedelta(minutes=30),
    )
    return incident
