"""Bench-only middleware (see bench/settings.py): how many SQL statements a request ran and how
long the server spent on it, in ``X-Bench-Queries`` and ``X-Bench-Server-Ms``. With an
``X-Bench-Per-Page`` request header, admin changelists show that many rows for this request
(gunicorn's sync workers serve one request at a time, so the change cannot leak)."""

import time

from django.contrib import admin
from django.db import connection


class _Counter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


class QueryCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        per_page = request.headers.get("X-Bench-Per-Page", "")
        saved = {}
        if per_page.isdigit():
            for model_admin in admin.site._registry.values():
                saved[model_admin] = model_admin.list_per_page
                model_admin.list_per_page = int(per_page)
        counter = _Counter()
        started = time.perf_counter()
        try:
            with connection.execute_wrapper(counter):
                response = self.get_response(request)
        finally:
            for model_admin, value in saved.items():
                model_admin.list_per_page = value
        response["X-Bench-Server-Ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
        response["X-Bench-Queries"] = str(counter.count)
        return response
