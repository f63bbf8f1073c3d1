"""Suite-wide pytest set-up. Tests run against DATABASE_URL (PostgreSQL in CI) or SQLite."""

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import translation


@pytest.fixture(autouse=True)
def _fresh_content_types():
    """A transactional test's flush recreates the content types under new ids; a process that
    kept the old ones in ContentType's cache then writes admin log rows pointing nowhere (seen
    in CI: django_admin_log's foreign key refused them). Each test starts with an empty cache."""
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness costs a second per user created; tests don't need it.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _publish_everything_at_once(settings):
    # Tests call publish() and read every output at once; the second step's rate limit is for
    # a stream of changes (tests/statuspage/test_pages.py tests it).
    settings.STATUS_PAGE_REST_INTERVAL = 0


@pytest.fixture(autouse=True)
def _no_login_throttling(settings):
    # django-axes needs the request in authenticate(), which ``client.login`` does not pass; the
    # tests of the throttling itself (tests/itsm/test_login_throttle.py) turn it back on.
    settings.AXES_ENABLED = False


@pytest.fixture(scope="session", autouse=True)
def _static_files_without_manifest():
    """Pages render in tests without a prior ``collectstatic`` (production uses the manifest)."""
    storages = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages):
        yield


@pytest.fixture(autouse=True)
def _english_after_each_test():
    """A request with ``Accept-Language: ro`` leaves Romanian active in the thread; the next test
    on this worker must start in the default language again."""
    yield
    translation.deactivate()


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    return True


@pytest.fixture
def redis_db(worker_id):
    """A Redis database of this xdist worker's own (for real Celery workers), emptied before
    and after the test."""
    import redis

    from tests.live import own_redis_url, redis_reachable

    url = own_redis_url(worker_id)
    if not redis_reachable(url):
        pytest.skip("needs Redis at 127.0.0.1:6379")
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
