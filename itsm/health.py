"""Liveness and readiness probes for load balancers and orchestrators."""

from django.db import connection
from django.http import JsonResponse


def healthz(request):
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


def _database_ok():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker_ok():
    from itsm.celery import app

    # One quick retry, not kombu's default 2 s back-off: a probe must answer within the
    # load balancer's timeout.
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0.2, interval_max=0.2, timeout=2)


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
