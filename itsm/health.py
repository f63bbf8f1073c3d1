"""Liveness and readiness probes for load balancers and orchestrators."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse

from itsm.bounded import BoundedCaller


def healthz(request):
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _database_ok():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


_probe = BoundedCaller("readyz")


def _ping_broker():
    from itsm.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0.2, interval_max=0.2, timeout=2)
        # Connecting is not enough: a hung Redis accepts connections and never answers.
        client = getattr(conn.default_channel, "client", None)
        if client is not None:
            client.ping()


def _broker_ok():
    # A probe must answer within a second, whatever the broker does. It may (re)connect, which
    # on a busy host takes longer than a publish on a pooled connection: its own, longer wait.
    _probe.call(_ping_broker, settings.READYZ_BROKER_WAIT)


def readyz(request):
    """The database and the Celery broker are reachable; 503 names the part that is not."""
    checks = {"database": _database_ok, "broker": _broker_ok}
    results, failing = {}, []
    for name, check in checks.items():
        try:
            check()
            results[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            results[name] = f"error: {exc.__class__.__name__}"
            failing.append(name)
    body = {"status": "ok" if not failing else "unavailable", "checks": results}
    if failing:
        body["failing"] = failing
    return JsonResponse(body, status=503 if failing else 200)
