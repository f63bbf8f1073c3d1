"""Brute force on ``/admin/login/``: django-axes locks a username at an address out after repeated
failures, admins see the lockout, and an operator (or the cool-off) lifts it."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def axes_on(settings):
    """Axes as it runs in production (the suite turns it off for unrelated tests)."""
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings


@pytest.fixture
def agent():
    return UserFactory(username="mara", is_staff=True, password="right-horse-battery")


def attempt(password, username="mara", ip="203.0.113.7"):
    client = Client(REMOTE_ADDR=ip)
    response = client.post(LOGIN, {"username": username, "password": password})
    return response, client


def fail(times, **kwargs):
    """Wrong passwords; the one that reaches the limit is answered with the lockout already."""
    for n in range(1, times + 1):
        response, _client = attempt("wrong", **kwargs)
        assert response.status_code == (429 if n >= 3 else 200)  # else: the form with its error


def logged_in(response, client):
    return response.status_code == 302 and client.get("/admin/").status_code == 200


def test_the_right_password_is_refused_after_repeated_failures(axes_on, agent):
    fail(3)
    response, client = attempt("right-horse-battery")
    assert response.status_code == 429
    assert "too many login attempts" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # still sent to the login page


def test_fewer_failures_do_not_lock_and_a_success_starts_again(axes_on, agent):
    fail(2)
    assert logged_in(*attempt("right-horse-battery"))
    fail(2)  # the success reset the count: two more are not a lockout either
    assert logged_in(*attempt("right-horse-battery"))


def test_a_lockout_is_for_that_username_from_that_address(axes_on, agent):
    """So an attacker cannot lock the desk out of its own admin from elsewhere."""
    UserFactory(username="ion", is_staff=True, password="another-good-one")
    fail(3)
    assert logged_in(*attempt("right-horse-battery", ip="198.51.100.20"))
    assert logged_in(*attempt("another-good-one", username="ion"))


def test_lockouts_are_listed_in_the_admin(axes_on, agent, client):
    fail(3)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    page = client.get("/admin/axes/accessattempt/?locked_out=yes")
    assert page.status_code == 200
    body = page.content.decode()
    assert "mara" in body and "203.0.113.7" in body


def test_an_operator_unlocks_with_axes_reset(axes_on, agent):
    fail(3)
    assert attempt("right-horse-battery")[0].status_code == 429
    call_command("axes_reset", verbosity=0)
    assert logged_in(*attempt("right-horse-battery"))


def test_deleting_the_attempt_in_the_admin_unlocks(axes_on, agent, client):
    fail(3)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    (row,) = AccessAttempt.objects.all()
    response = client.post(f"/admin/axes/accessattempt/{row.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert logged_in(*attempt("right-horse-battery"))


def test_the_lockout_ends_after_the_cool_off(axes_on, agent):
    fail(3)
    assert attempt("right-horse-battery")[0].status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert logged_in(*attempt("right-horse-battery"))


def test_tests_log_in_as_they_always_did(agent, client):
    """The suite's ``client.login`` has no request to give axes; it is off for such tests."""
    assert client.login(username="mara", password="right-horse-battery")


def test_limit_and_cool_off_come_from_the_environment():
    env = {**os.environ, "AXES_FAILURE_LIMIT": "7", "AXES_COOLOFF_MINUTES": "90"}
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.AXES_ENABLED, s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME, "
        "s.AXES_LOCKOUT_PARAMETERS, s.AXES_IPWARE_META_PRECEDENCE_ORDER)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == (
        "True 7 1:30:00 [['username', 'ip_address']] ['REMOTE_ADDR']"
    )
