"""With ``DEBUG=1`` Django's error page lists the settings, the request's environment and each
frame's variables: the credentials in our URL settings must not be among them."""

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from itsm.security import mask_url_credentials
from tests.live import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
DB_PASSWORD = "db-pass-4711"
REDIS_PASSWORD = "redis-pass-5678"
BROKER_PASSWORD = "broker-pass-9012"


@pytest.fixture
def empty_database(on_postgres):
    """A database that exists but was never migrated: the status page fails on its first query,
    the mistake an operator makes by forgetting ``migrate``."""
    db = settings.DATABASES["default"]
    name = f"itsm_debug_{uuid.uuid4().hex[:8]}"
    params = {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "dbname": "postgres",
        "autocommit": True,
    }
    with psycopg.connect(**params) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    # The server trusts local connections, so the password in the URL is ignored by it, but
    # it is a password in every setting an operator would write.
    yield f"postgres://{db['USER']}:{DB_PASSWORD}@{params['host']}:{params['port']}/{name}"
    with psycopg.connect(**params) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
def test_debug_error_page_masks_urls_with_credentials(empty_database, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DEBUG": "1",
        "ITSM_VAR_DIR": str(tmp_path),
        "DATABASE_URL": empty_database,
        "REDIS_URL": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
        "CELERY_BROKER_URL": f"redis://default:{BROKER_PASSWORD}@127.0.0.1:1/1",
    }
    env.pop("SECRET_KEY", None)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:

        def error_page():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()
            except OSError:
                return None  # not listening yet
            return 200, ""

        status, page = wait_for(error_page, 60, "runserver to answer")
    finally:
        server.kill()
        output = server.communicate(timeout=10)[0].decode()

    assert status == 500, output
    assert "ProgrammingError" in page, output  # Django's technical 500 page, not our error page
    for setting in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        assert setting in page
    for secret in (DB_PASSWORD, REDIS_PASSWORD, BROKER_PASSWORD):
        assert secret not in page, f"{secret} shown on the DEBUG page"
    assert "********************" in page


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://itsm:s3cret@db:5432/itsm", "postgres://itsm:***@db:5432/itsm"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("rediss://default:p%40ss@cache/1", "rediss://default:***@cache/1"),
        ("redis://cache:6379/0?password=s3cret&db=1", "redis://cache:6379/0?password=***&db=1"),
        ("smtp+tls://mail%40x.test:pw@smtp:587", "smtp+tls://mail%40x.test:***@smtp:587"),
        # Nothing secret: left as it is.
        ("postgres://itsm@db/itsm", "postgres://itsm@db/itsm"),
        ("http://127.0.0.1:8000/status", "http://127.0.0.1:8000/status"),
        ("sqlite:////srv/itsm/var/itsm.sqlite3", "sqlite:////srv/itsm/var/itsm.sqlite3"),
    ],
)
def test_mask_url_credentials(text, expected):
    assert mask_url_credentials(text, "***") == expected
