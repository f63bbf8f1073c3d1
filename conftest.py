"""Suite-wide pytest set-up. Tests run against DATABASE_URL (PostgreSQL in CI) or SQLite."""

import pytest
from django.db import connection


@pytest.fixture
def on_postgres():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    return True
