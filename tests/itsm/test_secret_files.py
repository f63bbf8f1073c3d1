"""The embedded default's secrets on disk: one key whoever starts first, and nothing under ``var/``
that another local user can read."""

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG_VARIABLES = ["SECRET_KEY", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"]

# Everything slow to import is imported first; then each process waits for the same instant and
# only the settings module itself runs, so the processes really do reach the key file together.
RACER = """\
import sys, time
import django, environ, celery, itsm
from django.utils.translation import gettext_lazy
start = float(sys.argv[1])
while time.time() < start:
    pass
from django.conf import settings
print(settings.SECRET_KEY)
"""


def embedded_env(var_dir):
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    env.update(ITSM_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="itsm.settings")
    return env


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_six_processes_started_together_agree_on_one_key(tmp_path, round_):
    var_dir = tmp_path / "var"
    start = time.time() + 3
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(start)],
            cwd=ROOT,
            env=embedded_env(var_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [racer.communicate(timeout=60) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * 6, [err for _out, err in outputs]
    keys = {out.strip() for out, _err in outputs}
    on_disk = (var_dir / "secret_key").read_text().strip()
    # Sessions and signed links made by one process must hold in every other one, and after a
    # restart (which reads the file).
    assert keys == {on_disk}
    assert len(on_disk) >= 50
    assert mode(var_dir / "secret_key") == 0o600
    assert not [p for p in var_dir.iterdir() if p.name.startswith(".secret_key")]  # no leftovers


def test_var_dir_key_and_sqlite_database_are_private(tmp_path):
    var_dir = tmp_path / "var"
    script = (
        "import django; django.setup(); from django.db import connection; "
        "connection.ensure_connection(); "
        "connection.cursor().execute('CREATE TABLE t (x int)'); connection.close()"
    )
    env = embedded_env(var_dir)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr

    assert mode(var_dir) == 0o700
    assert mode(var_dir / "secret_key") == 0o600
    database = var_dir / "itsm.sqlite3"
    assert database.exists()
    for path in [database, *var_dir.glob("itsm.sqlite3-*")]:
        assert mode(path) == 0o600, path


def test_an_existing_world_readable_install_is_tightened(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir(mode=0o755)
    os.chmod(var_dir, 0o755)
    key = var_dir / "secret_key"
    key.write_text("an-old-key-written-by-an-earlier-version-0123456789abcdef\n")
    os.chmod(key, 0o644)

    result = subprocess.run(
        [sys.executable, "-c", RACER, "0"],
        cwd=ROOT,
        env=embedded_env(var_dir),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "an-old-key-written-by-an-earlier-version-0123456789abcdef"
    assert mode(var_dir) == 0o700
    assert mode(key) == 0o600


def test_a_shared_directory_given_as_var_dir_is_not_tightened(tmp_path):
    """``ITSM_VAR_DIR=/var`` made /var 0700 and locked PostgreSQL out of its data directory: a
    directory holding anything but itsm's own files keeps its mode (the files itsm creates in
    it are still private)."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    (shared / "lib").mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RACER, "0"],
        cwd=ROOT,
        env=embedded_env(shared),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert mode(shared) == 0o755
    assert mode(shared / "secret_key") == 0o600
