"""itsm: the project package (settings, urls, Celery app, cross-app plumbing only)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
