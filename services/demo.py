"""Demo data for the service catalog: what ``manage.py load_demo`` puts in an empty install.

Every row is written with ``get_or_create`` / ``update_or_create`` on its natural key (slug, name,
email, the unique constraint of the model), so loading twice leaves the same rows behind. The
incidents app adds its history on top, from the :class:`Catalog` this module returns.
"""

import datetime as dt
from dataclasses import dataclass, field

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone

from services.models import (
    BusinessCalendar,
    BusinessHours,
    CauseKind,
    Channel,
    Contact,
    Contract,
    Criticality,
    Holiday,
    MaintenanceStatus,
    MaintenanceWindow,
    Organization,
    Service,
    ServiceGroup,
    ServiceImpact,
    ServiceStatus,
    SlaPolicy,
    SlaTarget,
    Subscription,
    Team,
)
from services.workflow import edit_dependencies, rebuild_status_history


@dataclass
class Catalog:
    """What the catalog demo created, by natural key, for loaders that build on it."""

    services: dict[str, Service] = field(default_factory=dict)  # by slug
    teams: dict[str, Group] = field(default_factory=dict)  # by group name
    agents: dict[str, User] = field(default_factory=dict)  # by username
    organizations: dict[str, Organization] = field(default_factory=dict)  # by slug
    contacts: dict[str, Contact] = field(default_factory=dict)  # by email
    calendars: dict[str, BusinessCalendar] = field(default_factory=dict)  # by name
    policies: dict[str, SlaPolicy] = field(default_factory=dict)  # by name


class _NoProgress:
    def set_description(self, desc=None, refresh=True):
        pass

    def update(self, n=1):
        pass


# --- The data --------------------------------------------------------------------------------

GROUPS = [("Customer-facing", 10), ("Platform", 20), ("Infrastructure", 30)]

# username, full name, email
AGENTS = [
    ("ana.popescu", "Ana Popescu", "ana.popescu@desk.example.com"),
    ("mihai.ionescu", "Mihai Ionescu", "mihai.ionescu@desk.example.com"),
    ("elena.dumitrescu", "Elena Dumitrescu", "elena.dumitrescu@desk.example.com"),
    ("james.carter", "James Carter", "james.carter@desk.example.com"),
    ("ioana.stan", "Ioana Stan", "ioana.stan@desk.example.com"),
]

# team name, team email, escalation contact, members
TEAMS = [
    ("Web team", "web@desk.example.com", "james.carter", ["james.carter", "ioana.stan"]),
    ("Payments team", "payments@desk.example.com", "ana.popescu", ["ana.popescu"]),
    ("Platform team", "platform@desk.example.com", "mihai.ionescu", ["mihai.ionescu"]),
    ("Database team", "dba@desk.example.com", "elena.dumitrescu", ["elena.dumitrescu"]),
]

# slug, name, group, owner team, criticality, public, description
SERVICES = [
    ("website", "Website", "Customer-facing", "Web team", Criticality.CRITICAL, True,
     "The public storefront at www.example.com."),
    ("mobile-api", "Mobile API", "Customer-facing", "Web team", Criticality.HIGH, True,
     "The API behind the iOS and Android apps."),
    ("checkout", "Checkout", "Customer-facing", "Payments team", Criticality.CRITICAL, True,
     "Basket, order placement and order confirmation."),
    ("customer-portal", "Customer portal", "Customer-facing", "Web team", Criticality.MEDIUM,
     True, "Account pages, invoices and support requests."),
    ("payments", "Payments", "Platform", "Payments team", Criticality.CRITICAL, True,
     "Card and bank-transfer payments through the acquiring bank."),
    ("auth", "Sign-in", "Platform", "Platform team", Criticality.CRITICAL, True,
     "Single sign-on, sessions and API tokens."),
    ("search", "Search", "Platform", "Platform team", Criticality.HIGH, True,
     "Product search and suggestions."),
    ("email-delivery", "Email delivery", "Platform", "Platform team", Criticality.MEDIUM, True,
     "Order confirmations, password resets and newsletters."),
    ("reporting", "Reporting", "Platform", "Database team", Criticality.LOW, False,
     "Internal sales and finance reports."),
    ("cdn", "CDN", "Infrastructure", "Platform team", Criticality.HIGH, True,
     "Static assets and images at the edge."),
    ("dns", "DNS", "Infrastructure", "Platform team", Criticality.CRITICAL, True,
     "Authoritative DNS for all public names."),
    ("database", "Database", "Infrastructure", "Database team", Criticality.CRITICAL, False,
     "The primary PostgreSQL cluster and its replicas."),
    ("cache", "Cache", "Infrastructure", "Platform team", Criticality.HIGH, False,
     "Redis for sessions and caching."),
    ("message-queue", "Message queue", "Infrastructure", "Platform team", Criticality.MEDIUM,
     False, "The queue between the web tier and the background workers."),
]  # fmt: skip

# service slug -> the slugs it depends on
DEPENDENCIES = {
    "website": ["checkout", "search", "auth", "cdn", "dns"],
    "mobile-api": ["checkout", "search", "auth", "dns"],
    "checkout": ["payments", "auth", "database", "email-delivery"],
    "customer-portal": ["auth", "database", "email-delivery", "dns"],
    "payments": ["database", "message-queue"],
    "auth": ["database", "cache"],
    "search": ["database"],
    "email-delivery": ["message-queue", "dns"],
    "reporting": ["database"],
    "cdn": ["dns"],
}

# slug, name, contacts (name, email, language), subscriptions
ORGANIZATIONS = [
    (
        "acme-retail",
        "Acme Retail SRL",
        [
            ("Andrei Georgescu", "andrei.georgescu@acme-retail.example.com", "ro"),
            ("Laura Mihai", "laura.mihai@acme-retail.example.com", "ro"),
        ],
    ),
    (
        "carpathian-bank",
        "Carpathian Bank",
        [
            ("Radu Constantin", "radu.constantin@carpathian-bank.example.com", "ro"),
            ("Sarah Mitchell", "sarah.mitchell@carpathian-bank.example.com", "en"),
            ("Victor Marin", "victor.marin@carpathian-bank.example.com", "ro"),
        ],
    ),
    (
        "danube-logistics",
        "Danube Logistics",
        [
            ("Cristina Radu", "cristina.radu@danube-logistics.example.com", "ro"),
            ("Tom Baker", "tom.baker@danube-logistics.example.com", "en"),
        ],
    ),
    (
        "northwind-traders",
        "Northwind Traders",
        [
            ("Emily Clark", "emily.clark@northwind.example.com", "en"),
            ("Oliver Hughes", "oliver.hughes@northwind.example.com", "en"),
        ],
    ),
    (
        "transilvania-media",
        "Transilvania Media",
        [
            ("Bianca Pop", "bianca.pop@transilvania-media.example.com", "ro"),
            ("George Stoica", "george.stoica@transilvania-media.example.com", "en"),
        ],
    ),
]

# (contact email or organisation slug, service slug, channel, webhook URL)
SUBSCRIPTIONS = [
    ("andrei.georgescu@acme-retail.example.com", "website", Channel.EMAIL, ""),
    ("andrei.georgescu@acme-retail.example.com", "checkout", Channel.EMAIL, ""),
    ("laura.mihai@acme-retail.example.com", "customer-portal", Channel.EMAIL, ""),
    ("acme-retail", "payments", Channel.EMAIL, ""),
    ("carpathian-bank", "payments", Channel.EMAIL, ""),
    ("carpathian-bank", "checkout", Channel.EMAIL, ""),
    ("sarah.mitchell@carpathian-bank.example.com", "auth", Channel.EMAIL, ""),
    ("carpathian-bank", "payments", Channel.WEBHOOK,
     "http://example.invalid/carpathian-bank/itsm-hook"),
    ("cristina.radu@danube-logistics.example.com", "mobile-api", Channel.EMAIL, ""),
    ("tom.baker@danube-logistics.example.com", "email-delivery", Channel.EMAIL, ""),
    ("danube-logistics", "website", Channel.EMAIL, ""),
    ("northwind-traders", "website", Channel.EMAIL, ""),
    ("emily.clark@northwind.example.com", "search", Channel.EMAIL, ""),
    ("northwind-traders", "cdn", Channel.WEBHOOK, "http://example.invalid/northwind/status"),
    ("bianca.pop@transilvania-media.example.com", "cdn", Channel.EMAIL, ""),
    ("transilvania-media", "website", Channel.EMAIL, ""),
]  # fmt: skip

BUSINESS_CALENDAR = "Bucharest business hours"
ALWAYS_CALENDAR = "24×7"
STANDARD_POLICY = "Standard"
PREMIUM_POLICY = "Premium 24×7"


def _hours(n):
    return dt.timedelta(hours=n)


def _minutes(n):
    return dt.timedelta(minutes=n)


# policy -> priority -> (response, resolution), in business time of the policy's calendar
POLICIES = {
    STANDARD_POLICY: (
        BUSINESS_CALENDAR,
        True,
        {
            1: (_minutes(30), _hours(4)),
            2: (_hours(1), _hours(8)),
            3: (_hours(4), _hours(24)),
            4: (_hours(8), _hours(40)),
            5: (_hours(16), _hours(80)),
        },
    ),
    PREMIUM_POLICY: (
        ALWAYS_CALENDAR,
        False,
        {
            1: (_minutes(15), _hours(2)),
            2: (_minutes(30), _hours(4)),
            3: (_hours(1), _hours(12)),
            4: (_hours(4), _hours(48)),
            5: (_hours(8), _hours(120)),
        },
    ),
}

# service slugs whose default policy is not the global default
SERVICE_POLICIES = {"payments": PREMIUM_POLICY, "database": PREMIUM_POLICY}

# organisation slug, service slug, policy
CONTRACTS = [
    ("carpathian-bank", "checkout", PREMIUM_POLICY),
    ("carpathian-bank", "auth", PREMIUM_POLICY),
    ("acme-retail", "website", PREMIUM_POLICY),
]


def _orthodox_easter(year):
    """Orthodox Easter Sunday (Gregorian date): Meeus's Julian algorithm plus the 13-day offset
    valid from 1900 to 2099."""
    a, b, c = year % 4, year % 7, year % 19
    d = (19 * c + 15) % 30
    e = (2 * a + 4 * b - d + 34) % 7
    month, day = divmod(d + e + 114, 31)
    return dt.date(year, month, day + 1) + dt.timedelta(days=13)


def romanian_public_holidays(year):
    """Romania's legal days off (Codul muncii, art. 139) for ``year``: {date: name}."""
    easter = _orthodox_easter(year)
    pentecost = easter + dt.timedelta(days=49)
    days = [
        (dt.date(year, 1, 1), "Anul Nou"),
        (dt.date(year, 1, 2), "Anul Nou"),
        (dt.date(year, 1, 6), "Boboteaza"),
        (dt.date(year, 1, 7), "Sfântul Ioan Botezătorul"),
        (dt.date(year, 1, 24), "Ziua Unirii Principatelor Române"),
        (easter - dt.timedelta(days=2), "Vinerea Mare"),
        (easter, "Paștele"),
        (easter + dt.timedelta(days=1), "Paștele"),
        (dt.date(year, 5, 1), "Ziua Muncii"),
        (dt.date(year, 6, 1), "Ziua Copilului"),
        (pentecost, "Rusaliile"),
        (pentecost + dt.timedelta(days=1), "Rusaliile"),
        (dt.date(year, 8, 15), "Adormirea Maicii Domnului"),
        (dt.date(year, 11, 30), "Sfântul Andrei"),
        (dt.date(year, 12, 1), "Ziua Națională a României"),
        (dt.date(year, 12, 25), "Crăciunul"),
        (dt.date(year, 12, 26), "Crăciunul"),
    ]
    holidays = {}
    for day, name in days:  # two feasts can fall on one day (1 June 2026: Rusalii, children)
        holidays[day] = f"{holidays[day]}; {name}" if day in holidays else name
    return holidays


# --- The loaders, one step each --------------------------------------------------------------


def _load_teams(catalog):
    # Demo agents work incidents: the seeded agents' group gives them the permissions the
    # incident workflow checks.
    desk = Group.objects.filter(name="Service desk agent").first()
    for username, full_name, email in AGENTS:
        first, last = full_name.split(" ", 1)
        user, created = User.objects.get_or_create(
            username=username,
            defaults={"email": email, "first_name": first, "last_name": last, "is_staff": True},
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        if desk is not None:
            user.groups.add(desk)
        catalog.agents[username] = user
    for name, email, escalation, members in TEAMS:
        group, _ = Group.objects.get_or_create(name=name)
        Team.objects.update_or_create(
            group=group,
            defaults={"email": email, "escalation_contact": catalog.agents[escalation]},
        )
        group.user_set.add(*(catalog.agents[m] for m in members))
        catalog.teams[name] = group


def _load_calendars(catalog):
    business, _ = BusinessCalendar.objects.update_or_create(
        name=BUSINESS_CALENDAR, defaults={"time_zone": "Europe/Bucharest", "is_24x7": False}
    )
    for weekday in range(5):
        BusinessHours.objects.get_or_create(
            calendar=business, weekday=weekday, opens_at=dt.time(9), closes_at=dt.time(17)
        )
    for year in (2026, 2027):
        for day, name in romanian_public_holidays(year).items():
            Holiday.objects.update_or_create(calendar=business, date=day, defaults={"name": name})
    always, _ = BusinessCalendar.objects.update_or_create(
        name=ALWAYS_CALENDAR, defaults={"time_zone": "UTC", "is_24x7": True}
    )
    catalog.calendars = {business.name: business, always.name: always}


def _load_policies(catalog):
    for name, (calendar, is_default, targets) in POLICIES.items():
        policy, _ = SlaPolicy.objects.update_or_create(
            name=name,
            defaults={"calendar": catalog.calendars[calendar], "is_default": is_default},
        )
        for priority, (response, resolution) in targets.items():
            SlaTarget.objects.update_or_create(
                policy=policy,
                priority=priority,
                defaults={"response_target": response, "resolution_target": resolution},
            )
        catalog.policies[name] = policy


def _load_services(catalog):
    groups = {}
    for name, order in GROUPS:
        groups[name], _ = ServiceGroup.objects.update_or_create(
            name=name, defaults={"display_order": order}
        )
    for order, (slug, name, group, team, criticality, public, description) in enumerate(
        SERVICES, start=1
    ):
        policy = SERVICE_POLICIES.get(slug)
        service, _ = Service.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "group": groups[group],
                "owner_team": catalog.teams[team],
                "criticality": criticality,
                "is_public": public,
                "description": description,
                "display_order": order * 10,
                "default_sla_policy": catalog.policies[policy] if policy else None,
            },
        )
        catalog.services[slug] = service


def _load_dependencies(catalog):
    for slug, needs in DEPENDENCIES.items():
        # Through the workflow, as the admin does: an existing edge is kept, a cycle refused.
        edit_dependencies(
            service=catalog.services[slug], add=[catalog.services[other] for other in needs]
        )


def _load_customers(catalog):
    for slug, name, contacts in ORGANIZATIONS:
        organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": name})
        catalog.organizations[slug] = organization
        for contact_name, email, language in contacts:
            contact, _ = Contact.objects.get_or_create(
                organization=organization,
                email=email,
                defaults={"name": contact_name, "language": language},
            )
            catalog.contacts[email] = contact


def _load_subscriptions(catalog):
    for who, slug, channel, url in SUBSCRIPTIONS:
        subscriber = (
            {"contact": catalog.contacts[who]}
            if "@" in who
            else {"organization": catalog.organizations[who]}
        )
        Subscription.objects.get_or_create(
            service=catalog.services[slug], channel=channel, webhook_url=url, **subscriber
        )


def _load_contracts(catalog):
    for organization, service, policy in CONTRACTS:
        Contract.objects.get_or_create(
            organization=catalog.organizations[organization],
            service=catalog.services[service],
            defaults={"sla_policy": catalog.policies[policy]},
        )


def _load_maintenance(catalog):
    # Placed relative to today so the demo always has history and one window ahead; the title
    # is the natural key, so a later run moves the same windows rather than adding new ones.
    today = timezone.now().astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    windows = [
        (
            "Database minor version upgrade",
            today - dt.timedelta(days=30) + dt.timedelta(hours=21),
            dt.timedelta(hours=2),
            MaintenanceStatus.COMPLETED,
            ["database"],
            "We upgraded the database cluster to the latest minor release. Sign-in and "
            "checkout were briefly read-only.",
        ),
        (
            "CDN certificate rotation",
            today - dt.timedelta(days=9) + dt.timedelta(hours=6),
            dt.timedelta(hours=1),
            MaintenanceStatus.COMPLETED,
            ["cdn"],
            "TLS certificates at the edge were renewed. No impact was expected.",
        ),
        (
            "Email provider migration",
            today - dt.timedelta(days=3) + dt.timedelta(hours=20),
            dt.timedelta(hours=3),
            MaintenanceStatus.CANCELLED,
            ["email-delivery"],
            "Postponed: the migration will be rescheduled.",
        ),
        (
            "Payment gateway upgrade",
            today + dt.timedelta(days=7) + dt.timedelta(hours=22),
            dt.timedelta(hours=2),
            MaintenanceStatus.SCHEDULED,
            ["payments", "checkout"],
            "Our acquiring bank upgrades its gateway. Card payments may fail for a few "
            "minutes; bank transfers are not affected.",
        ),
    ]
    for title, start, length, status, slugs, description in windows:
        window, _ = MaintenanceWindow.objects.update_or_create(
            title=title,
            defaults={
                "scheduled_start": start,
                "scheduled_end": start + length,
                "status": status,
                "public_description": description,
            },
        )
        window.services.set([catalog.services[s] for s in slugs])
        if status == MaintenanceStatus.COMPLETED:
            # Past maintenance is history: its services were under maintenance for its hours.
            ServiceImpact.objects.filter(
                cause_kind=CauseKind.MAINTENANCE, cause_id=window.pk
            ).delete()
            ServiceImpact.objects.bulk_create(
                ServiceImpact(
                    service=catalog.services[s],
                    cause_kind=CauseKind.MAINTENANCE,
                    cause_id=window.pk,
                    status=ServiceStatus.UNDER_MAINTENANCE,
                    valid_from=start,
                    valid_to=start + length,
                )
                for s in slugs
            )
    rebuild_status_history()


STEPS = [
    ("teams", _load_teams),
    ("calendars", _load_calendars),
    ("SLA policies", _load_policies),
    ("services", _load_services),
    ("dependencies", _load_dependencies),
    ("customers", _load_customers),
    ("subscriptions", _load_subscriptions),
    ("contracts", _load_contracts),
    ("maintenance", _load_maintenance),
]


def load_catalog_demo(progress=None):
    """Load the demo catalog (idempotent) and return a :class:`Catalog` of what is there.

    ``progress`` is a tqdm-like object: each of the ``len(STEPS)`` steps calls
    ``set_description(name)`` then ``update(1)``."""
    progress = progress or _NoProgress()
    catalog = Catalog()
    with transaction.atomic():
        for name, step in STEPS:
            progress.set_description(name)
            step(catalog)
            progress.update(1)
    return catalog
