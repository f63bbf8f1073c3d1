"""Files under ``var/`` that only the account running itsm may read: the directory itself, the
generated ``SECRET_KEY`` and the SQLite database.

Imported by the settings module, so it uses nothing but the standard library.
"""

import contextlib
import os
import secrets
import string
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The alphabet of Django's get_random_secret_key, without importing Django here.
_KEY_CHARS = string.ascii_lowercase + string.digits + "!@#$%^&*(-_=+)"


# What itsm keeps in its var directory. An existing directory holding only these (or nothing)
# is ours to tighten; one holding anything else is someone else's (``ITSM_VAR_DIR=/var`` once
# made /var 0700 and locked PostgreSQL out of its data directory), so it is left as it is.
OWN_ENTRIES = ("secret_key", ".secret_key", "itsm.sqlite3", "celery", "celerybeat-schedule",
               "static")  # fmt: skip


def private_directory(path):
    """Create ``path`` (and parents) if needed, mode 0700. An existing directory that holds
    only what itsm writes (an install made by an earlier version, 0755) is tightened too; a
    shared one is never touched."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if is_own_directory(path):
        _take_away_group_and_other(path)
    return path


def is_own_directory(path):
    return all(entry.name.startswith(OWN_ENTRIES) for entry in Path(path).iterdir())


def private_file(path):
    """Create ``path`` empty with mode 0600 unless it exists, and tighten it if it does. SQLite
    gives its ``-wal`` and ``-shm`` files the mode of the database file, so creating that one
    ourselves before SQLite does covers all three."""
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        _take_away_group_and_other(path)
    return path


def read_or_create_secret_key(path):
    """The key stored in ``path``; created there first (mode 0600) when there is none.

    Several processes (web, worker, beat, ...) start at once on a fresh install and must all end
    up with the same key. Each writes a candidate to a temporary file of its own, complete
    before anyone can see it, and hard-links it to ``path``: ``link`` refuses when the name
    exists, so exactly one candidate wins, and everyone reads the winner back. A reader never
    sees a half-written file.
    """
    path = Path(path)
    if not path.exists():
        candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
        try:
            with os.fdopen(fd, "w") as out:
                out.write("".join(secrets.choice(_KEY_CHARS) for _ in range(50)) + "\n")
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: its key it is
                os.link(candidate, path)
        finally:
            candidate.unlink()
    _take_away_group_and_other(path)
    key = path.read_text().strip()
    if not key:
        raise RuntimeError(f"{path} is empty: delete it (a new key is made) or set SECRET_KEY")
    return key


def _take_away_group_and_other(path):
    current = path.stat().st_mode & 0o777
    if current & 0o077:
        # A file or directory of another account: leave it as it is.
        with contextlib.suppress(PermissionError):
            os.chmod(path, current & ~0o077)
