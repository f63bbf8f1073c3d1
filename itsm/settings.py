"""Settings for itsm, read from the environment in one place (django-environ).

With no environment set, everything runs embedded under ``var/``: SQLite in WAL mode, Celery on
kombu's filesystem transport, a local-memory cache and email to the console. Setting
``DATABASE_URL``, ``REDIS_URL`` / ``CELERY_BROKER_URL`` and ``EMAIL_URL`` moves the same code
onto PostgreSQL, Redis and SMTP. Nothing below branches on "dev vs prod" beyond these values.
"""

from datetime import datetime, timedelta
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _
from kombu import Queue

from itsm.keyfile import private_directory, private_file, read_or_create_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent
# var/ holds the generated secret key and the SQLite database: only this account may read it.
VAR_DIR = private_directory(environ.Env().str("ITSM_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# Without DEBUG a real SECRET_KEY must be given; the embedded default keeps one under var/ so a
# laptop install works without configuration and sessions survive restarts.
if "SECRET_KEY" in env:
    SECRET_KEY = env.str("SECRET_KEY")
else:
    # Created atomically with mode 0600: processes started together all read the same key.
    SECRET_KEY = read_or_create_secret_key(VAR_DIR / "secret_key")

# Rotating SECRET_KEY: put the old one here (comma-separated) for as long as what it signed must
# stay valid: sessions, and unsubscribe links for UNSUBSCRIBE_LINK_MAX_AGE_DAYS.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI from our own static files: /api/docs/ works offline
    "axes",
    "services",
    "incidents",
    "oncall",
    "problems",
    "notifications",
    "statuspage",
    # Last: its admin module hardens every admin registered before it (itsm/admin.py).
    "itsm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # The public status page's snapshots, before sessions, users and the login throttle.
    "statuspage.middleware.PublishedPagesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Safe retries of API POSTs (Idempotency-Key): after the session and user it identifies.
    "itsm.idempotency.IdempotencyMiddleware",
    # Last, as django-axes requires: it turns a lockout into its 429 response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "itsm.urls"
WSGI_APPLICATION = "itsm.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "itsm" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "incidents.context_processors.open_major_incidents",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
# An empty DATABASE_URL (``DATABASE_URL= make test``) means the embedded default, as unset does.
DATABASE_URL = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'itsm.sqlite3'}"
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        private_file(DATABASES["default"]["NAME"])  # before SQLite creates it world-readable
    # Web, worker and beat write at once: WAL lets readers run beside the writer, IMMEDIATE
    # transactions take the write lock up front so they wait (busy timeout) instead of failing
    # with "database is locked" on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
        ),
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache -----------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="itsm"),
            # A hung Redis must not hang the request that reads the cache.
            "OPTIONS": {"socket_timeout": 1, "socket_connect_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ----------------------------------------------------------------------------------
# The embedded default is kombu's filesystem transport under var/: no server, yet a real worker
# and beat run as they would on Redis.
_celery_dir = VAR_DIR / "celery"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than any countdown we use, so Redis never re-delivers a task still waiting.
    "visibility_timeout": 3600,
    # A hung Redis accepts the connection and never answers: without a socket timeout a publish
    # waits forever. Above kombu's 1 s BRPOP timeout, so an idle worker's wait is not cut short.
    "socket_timeout": 5,
    "socket_connect_timeout": 2,
}
# How long a request waits for a publish (and /readyz for the broker) before it goes on without
# it: the outbox row is committed, the sweep dispatches it (itsm/bounded.py).
BROKER_PUBLISH_WAIT = env.float("BROKER_PUBLISH_WAIT", default=0.25)
READYZ_BROKER_WAIT = env.float("READYZ_BROKER_WAIT", default=0.8)
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("out", "processed", "control"):
        (_celery_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "data_folder_in": str(_celery_dir / "out"),
            "data_folder_out": str(_celery_dir / "out"),
            "processed_folder": str(_celery_dir / "processed"),
            # Broadcast control (pidbox) files, which kombu puts in the cwd by default.
            "control_folder": str(_celery_dir / "control"),
            "store_processed": False,
            # kombu sleeps this long whenever the worker holds its prefetched tasks: its 1 s
            # default capped the embedded worker at about 2 tasks per second.
            "polling_interval": env.float("BROKER_POLLING_INTERVAL", default=0.01),
        }
    )
    # A folder per queue, atomic message files (write, then rename), one listing per batch:
    # chosen over kombu's SQLAlchemy transport and an embedded Valkey by bench E1 (README).
    CELERY_BROKER_TRANSPORT = "itsm.embedded_broker:Transport"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# A request must never hang on a dead broker: the outbox row is committed already and the beat
# sweep re-dispatches it, so publishing gives up quickly.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
SLA_SWEEP_INTERVAL = env.float("SLA_SWEEP_INTERVAL", default=5.0)
OUTBOX_SWEEP_INTERVAL = env.float("OUTBOX_SWEEP_INTERVAL", default=10.0)
# Two queues, so slow deliveries (a receiver that hangs, a stalled relay) never hold the sweeps
# up: a worker of its own consumes "sweeps" (run_all starts one per queue; README "Workers"),
# with two processes, so an SLA sweep never waits behind an outbox sweep (on the embedded
# default one of up to 4.5 s under load made SLA sweeps expire behind it: breaches were flagged
# 4.8 s late at p99; bench E1).
# A worker started without -Q consumes both, as one queue did before.
CELERY_TASK_DEFAULT_QUEUE = "deliveries"
CELERY_TASK_QUEUES = (
    Queue("sweeps", routing_key="sweeps"),
    Queue("deliveries", routing_key="deliveries"),
)
CELERY_TASK_ROUTES = {
    "incidents.sweep_sla": {"queue": "sweeps"},
    "notifications.sweep_outbox": {"queue": "sweeps"},
    "incidents.propose_problems": {"queue": "sweeps"},
}
# A sweep not started within two ticks expires: a later one does its work, none pile up (one
# tick would drop most sweeps on a single busy worker that also takes deliveries).
CELERY_BEAT_SCHEDULE = {
    "sla-sweep": {
        "task": "incidents.sweep_sla",
        "schedule": timedelta(seconds=SLA_SWEEP_INTERVAL),
        "options": {"expires": SLA_SWEEP_INTERVAL * 2},
    },
    "outbox-sweep": {
        "task": "notifications.sweep_outbox",
        "schedule": timedelta(seconds=OUTBOX_SWEEP_INTERVAL),
        "options": {"expires": OUTBOX_SWEEP_INTERVAL * 2},
    },
    # The safety net of publishing (a request lost with a dead broker): a quick publish each
    # minute (it skips nothing, it has no request time), a full one each hour.
    "status-page-publish": {
        "task": "statuspage.publish",
        "schedule": timedelta(seconds=60),
        "options": {"expires": 120},
    },
    "status-page-full-publish": {
        "task": "statuspage.publish",
        "schedule": timedelta(hours=1),
        "kwargs": {"full": True},
        "options": {"expires": 3600},
    },
    # Maintenance windows start and end by themselves at their scheduled times (issue 18): a
    # window is at most one tick late; a sweep not started within two ticks expires.
    "maintenance-start-and-end": {
        "task": "services.start_and_end_maintenance",
        "schedule": timedelta(seconds=30),
        "options": {"expires": 60, "queue": "sweeps"},
    },
    "idempotency-purge": {
        "task": "itsm.purge_idempotency_records",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600},
    },
    "uptime-roll-up": {
        "task": "statuspage.roll_up_uptime",
        "schedule": timedelta(minutes=10),
        "options": {"expires": 600},
    },
    # Overdue action items of post-incident reviews: hourly, so a missed tick costs an hour;
    # each item reminds once per day whatever the number of runs (a unique row per day).
    "action-item-reminders": {
        "task": "incidents.remind_overdue_action_items",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600, "queue": "sweeps"},
    },
    # Recurring incidents: a problem proposed to problem managers (issue 20), once per cluster.
    "propose-problems": {
        "task": "incidents.propose_problems",
        "schedule": timedelta(seconds=env.float("PROBLEM_RECURRENCE_INTERVAL", default=900.0)),
        "options": {"expires": 900, "queue": "sweeps"},
    },
}

# --- Problems --------------------------------------------------------------------------------
# A service with this many incidents (not linked to a problem) within this many days gets a
# problem proposed to the "Problem manager" group.
PROBLEM_RECURRENCE_COUNT = env.int("PROBLEM_RECURRENCE_COUNT", default=3)
PROBLEM_RECURRENCE_DAYS = env.float("PROBLEM_RECURRENCE_DAYS", default=7.0)

# --- Alerts in ---------------------------------------------------------------------------------
# A webhook body larger than this is refused with 413 (and kept, truncated, for staff to see).
INTEGRATION_MAX_BODY = env.int("INTEGRATION_MAX_BODY", default=1024 * 1024)
# When set, Grafana's X-Grafana-Alerting-Signature (HMAC-SHA256 of the body) must match.
GRAFANA_WEBHOOK_SECRET = env.str("GRAFANA_WEBHOOK_SECRET", default="")

# --- Status page -----------------------------------------------------------------------------
STATUS_PAGE_NAME = env.str("STATUS_PAGE_NAME", default="itsm status")
# The Statuspage-compatible JSON's page id.
STATUS_PAGE_ID = env.str("STATUS_PAGE_ID", default="itsm")
# Days of the page are calendar days in this time zone.
STATUS_PAGE_TIME_ZONE = env.str("STATUS_PAGE_TIME_ZONE", default="UTC")
# Every publish is also written here as files, for nginx or any static host to serve when
# Django, the database or the workers are down (README "Status page"). Empty: no files.
STATUS_PAGE_DIR = env.str("STATUS_PAGE_DIR", default=str(VAR_DIR / "public"))
# Subscription requests per address and per client address, per hour.
SUBSCRIBE_RATE_PER_ADDRESS = env.int("SUBSCRIBE_RATE_PER_ADDRESS", default=5)
SUBSCRIBE_RATE_PER_IP = env.int("SUBSCRIBE_RATE_PER_IP", default=20)
# A publish's second step (history, feeds, badges, the other language) runs at most this often
# under a stream of changes; the first (the page, incidents, JSON) runs for every change.
STATUS_PAGE_REST_INTERVAL = env.float("STATUS_PAGE_REST_INTERVAL", default=5.0)
STATUS_PAGE_MAX_AGE = env.int("STATUS_PAGE_MAX_AGE", default=10)
STATUS_PAGE_READ_CACHE_SECONDS = env.float("STATUS_PAGE_READ_CACHE_SECONDS", default=0.25)

# --- Cost of downtime and metrics -------------------------------------------------------------
# The currency of the services' and contracts' costs per hour (an ISO 4217 code, shown as is).
DOWNTIME_COST_CURRENCY = env.str("DOWNTIME_COST_CURRENCY", default="EUR")
# Months of the metrics dashboard are calendar months in this time zone.
METRICS_TIME_ZONE = env.str("METRICS_TIME_ZONE", default="UTC")

# --- SLA -------------------------------------------------------------------------------------
# Fractions of a target at which the assignee (or group) is warned before the breach.
SLA_WARNING_FRACTIONS = [float(x) for x in env.list("SLA_WARNING_FRACTIONS", default=[0.75, 0.9])]
SLA_SWEEP_BATCH = env.int("SLA_SWEEP_BATCH", default=500)

# --- Notifications ---------------------------------------------------------------------------
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
# django-environ puts ``EMAIL_URL``'s query (``?timeout=5``) into the backend's OPTIONS, which
# Django's SMTP backend ignores: take the timeout out of there. It is the total time one email
# may take (connect, greeting, send): a relay that never answers costs that, not a worker.
_email_options = EMAIL_CONFIG.pop("OPTIONS", {}) or {}
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=float(_email_options.pop("TIMEOUT", 10)))
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="itsm <noreply@itsm.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# A failing message is retried with capped exponential backoff (base doubled per try, at most
# NOTIFY_BACKOFF_MAX apart) until NOTIFY_RETRY_HOURS after it was queued; a 4xx from a webhook
# receiver (other than 404/410, permanent, and 408/429, transient) only NOTIFY_CLIENT_ERROR_
# ATTEMPTS times. A channel outage (relay or endpoint down) uses up no attempt: see README.
NOTIFY_BACKOFF_BASE = env.float("NOTIFY_BACKOFF_BASE", default=30.0)  # seconds, doubled per try
NOTIFY_BACKOFF_MAX = env.float("NOTIFY_BACKOFF_MAX", default=3600.0)  # seconds
NOTIFY_RETRY_HOURS = env.float("NOTIFY_RETRY_HOURS", default=48.0)
NOTIFY_CLIENT_ERROR_ATTEMPTS = env.int("NOTIFY_CLIENT_ERROR_ATTEMPTS", default=3)
# A message whose send kills its worker (segfault, OOM, kill -9) fails after this many deaths.
NOTIFY_MAX_WORKER_DEATHS = env.int("NOTIFY_MAX_WORKER_DEATHS", default=3)
NOTIFY_LEASE_SECONDS = env.int("NOTIFY_LEASE_SECONDS", default=120)
NOTIFY_BATCH_SIZE = env.int("NOTIFY_BATCH_SIZE", default=200)
NOTIFY_WEBHOOK_TIMEOUT = env.float("NOTIFY_WEBHOOK_TIMEOUT", default=10.0)
# SSRF guard: webhooks to loopback/private/link-local/metadata addresses are refused unless
# the operator lists the networks here (CIDR), e.g. for an internal receiver.
NOTIFY_WEBHOOK_ALLOWED_NETWORKS = env.list("NOTIFY_WEBHOOK_ALLOWED_NETWORKS", default=[])
# How long the unsubscribe link in an email works (every email carries a fresh one).
UNSUBSCRIBE_LINK_MAX_AGE = env.int("UNSUBSCRIBE_LINK_MAX_AGE_DAYS", default=365) * 24 * 3600
# Links sent before they were dated never expired; they work until this moment (a year after
# dated links came), then say "expired" like any old link.
UNSUBSCRIBE_LEGACY_LINKS_UNTIL = datetime.fromisoformat(
    env.str("UNSUBSCRIBE_LEGACY_LINKS_UNTIL", default="2027-12-02T00:00:00+00:00")
)
# The right-hand side of Message-IDs; empty means the host of SITE_URL.
MESSAGE_ID_DOMAIN = env.str("MESSAGE_ID_DOMAIN", default="")

# --- Auth, i18n, static ----------------------------------------------------------------------
# django-axes first: it refuses a locked-out login before the password is even checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Brute force on /admin/login/ (and the API's basic auth): after AXES_FAILURE_LIMIT failures the
# same username from the same address is refused for AXES_COOLOFF_MINUTES. Locking the pair, not
# the address or the username alone, means an attacker cannot lock the desk out of its admin from
# elsewhere. Lockouts are listed under "Axes" in the admin; README "Security" says how to lift one.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
# "username+ip_address" is one combined parameter; "ip_address,username" locks by either.
AXES_LOCKOUT_PARAMETERS = [
    part.split("+") if "+" in part else part
    for part in env.list("AXES_LOCKOUT_PARAMETERS", default=["username+ip_address"])
]
AXES_RESET_ON_SUCCESS = True
# Behind a reverse proxy REMOTE_ADDR is the proxy: name the header it sets and how many proxies
# there are, or every client shares one address (see README "Security").
AXES_IPWARE_META_PRECEDENCE_ORDER = env.list(
    "AXES_IPWARE_META_PRECEDENCE_ORDER", default=["REMOTE_ADDR"]
)
AXES_IPWARE_PROXY_COUNT = env.int("AXES_IPWARE_PROXY_COUNT", default=None)
AXES_IPWARE_PROXY_TRUSTED_IPS = env.list("AXES_IPWARE_PROXY_TRUSTED_IPS", default=[]) or None
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ro", _("Romanian"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env.bool("STATIC_MANIFEST", default=not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # Closed by default (DRF's own defaults are AllowAny with Basic authentication): a bearer
    # token, or a signed-in session for the docs; every view needs one of them.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "itsm.api_auth.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["itsm.api_auth.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env.str("API_THROTTLE_RATE", default="600/min")},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# How long an Idempotency-Key's first answer is kept for a retry (itsm/idempotency.py).
IDEMPOTENCY_KEY_TTL_HOURS = env.float("IDEMPOTENCY_KEY_TTL_HOURS", default=24.0)
SPECTACULAR_SETTINGS = {
    "TITLE": "itsm API",
    "VERSION": "1",
    # Swagger UI's bundle, styles and icon from drf-spectacular-sidecar's static files, not a CDN:
    # the docs work on a desk with no internet, and the page needs no foreign origin.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Impact and urgency share one scale: one enum in the schema, named for what it is.
    "ENUM_NAME_OVERRIDES": {
        "LevelEnum": "incidents.models.Level",
        "ResolutionCodeEnum": "incidents.models.ResolutionCode",
        "PublicStatusEnum": "incidents.models.PublicStatus",
        "ServiceStatusEnum": "services.models.ServiceStatus",
        "HurtStatusEnum": "incidents.models.HURT_STATUS_CHOICES",
        "MaintenanceStatusEnum": "services.models.MaintenanceStatus",
    },
    # OpenAPI 3.1: its ``webhooks`` document what itsm POSTs to integrators' endpoints.
    "OAS_VERSION": "3.1.0",
    "WEBHOOKS": [
        f"{module}.{name}"
        for module, names in (
            (
                "incidents.api.webhooks",
                ["incident_created", "incident_updated", "incident_resolved"],
            ),
            ("incidents.api.webhooks", ["sla_warning", "sla_breached"]),
            (
                "notifications.api.schema",
                [
                    "maintenance_scheduled",
                    "maintenance_started",
                    "maintenance_completed",
                    "maintenance_cancelled",
                    "ping",
                ],
            ),
        )
        for name in names
    ],
    # The error shape, the refusals every operation can answer and Idempotency-Key on every
    # POST, added to each app's operations in one place (itsm/api_schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "itsm.api_schema.document_api",
    ],
}

# --- Security (HTTPS settings on when the operator says the site is behind TLS) --------------
SECURE_HTTPS = env.bool("SECURE_HTTPS", default=False)
if SECURE_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Preload lists are hard to leave again: only when the operator asks for it. Off is a choice,
    # so `check --deploy` is not to warn about it (security.W021).
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp) on every response, the admin and the public site alike: no
# inline script, no plugins, no framing, forms only to ourselves. Inline *styles* are allowed:
# our admin templates and the email previews (whose HTML part is inline-styled mail) use them,
# and a style cannot run code. The API docs add the CDN Swagger UI comes from (itsm/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# Error reports (the DEBUG page, mail to ADMINS) mask passwords inside URL settings too.
DEFAULT_EXCEPTION_REPORTER_FILTER = "itsm.security.CredentialsFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The filesystem transport has no host; kombu says so on every connection.
    LOGGING["loggers"] = {"kombu.connection": {"level": "ERROR"}}
# django-axes announces its mode on every start, management commands included.
LOGGING.setdefault("loggers", {})["axes.apps"] = {"level": "WARNING"}
