"""What every benchmark shares: rows of the table, timing, a fresh PostgreSQL database, the
processes a benchmark starts (Celery worker and beat, gunicorn), an SMTP sink, and bulk data
loading with PostgreSQL COPY.

Nothing here touches the ``itsm`` dev database, the test databases or Redis db 0: the bench
works in its own database (``itsm_bench``, cloned from a migrated template) and its own Redis
database (``/9`` unless ``BENCH_REDIS_DB`` says otherwise). ``bench.__main__`` points the
environment at them before Django is set up, so the bench process and every subprocess it
starts agree.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
BIN = Path(sys.executable).parent

# Overridable, so two checkouts on one machine can benchmark without dropping each other's data.
BENCH_DB = os.environ.get("BENCH_DB", "itsm_bench")
TEMPLATE_DB = f"{BENCH_DB}_template"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/itsm"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


# --- the table ---------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table. ``baseline`` is measured in the same run; ``ratio`` is
    value / baseline (or whatever the target compares); ``met`` is None when there is no
    target for the figure (it is context for another one)."""

    figure: str
    value: float | int | str | None
    unit: str = ""
    baseline: float | int | None = None
    ratio: float | None = None
    target: str = ""
    met: bool | None = None
    bench: str = ""

    def as_dict(self):
        return asdict(self)


def _number(value, unit=""):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        text = f"{value:,}"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def format_table(rows: Iterable[Row], *, markdown=False) -> str:
    header = ["#", "figure", "value", "baseline", "ratio", "target", "met"]
    lines = []
    for row in rows:
        met = {True: "met", False: "MISSED", None: ""}[row.met]
        lines.append(
            [
                row.bench,
                row.figure,
                _number(row.value, row.unit),
                _number(row.baseline, row.unit),
                "-" if row.ratio is None else f"{row.ratio:.3g}×",
                row.target or "",
                met,
            ]
        )
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(cells) + " |" for cells in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(cells[i]) for cells in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths[:-1]))
    fmt += "  {}"
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*cells) for cells in lines]
    return "\n".join(out)


def say(*parts):
    """Progress lines go to stderr, the table to stdout."""
    print(*parts, file=sys.stderr, flush=True)


# --- timing ------------------------------------------------------------------------------------


def median_time(fn: Callable[[], object], *, repeat=5, setup: Callable[[], object] | None = None):
    """The median wall time of ``fn()`` over ``repeat`` runs (``setup()`` untimed before each),
    and the list of times, in seconds."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def percentile(values, p):
    """The p-th percentile (0-100) by linear interpolation, as numpy's default does."""
    values = sorted(values)
    if not values:
        return None
    k = (len(values) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (k - low)


# --- environment -------------------------------------------------------------------------------


def _with_path(url, path):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=path))


def bench_environment(environ=os.environ):
    """The variables that point the bench (and what it starts) at its own database and Redis
    database, derived from the caller's ``DATABASE_URL`` and ``REDIS_URL``."""
    base = environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://", "pgsql://")):
        base = DEFAULT_DATABASE_URL  # the benchmarks measure PostgreSQL, never SQLite
    redis = environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    redis = _with_path(redis, "/" + environ.get("BENCH_REDIS_DB", "9"))
    return {
        "DATABASE_URL": _with_path(base, "/" + BENCH_DB),
        "BENCH_ADMIN_DATABASE_URL": _with_path(base, "/postgres"),
        "REDIS_URL": redis,
        "CELERY_BROKER_URL": redis,
        "CACHE_KEY_PREFIX": "itsm-bench",
        "EMAIL_URL": "dummymail://",
        "DEBUG": "0",
        "LOG_LEVEL": "WARNING",
    }


def _admin_dsn():
    url = urllib.parse.urlsplit(os.environ["BENCH_ADMIN_DATABASE_URL"])
    return urllib.parse.urlunsplit(url._replace(scheme="postgresql"))


def _admin_execute(*statements):
    import psycopg

    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def flush_redis():
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


# --- a fresh database --------------------------------------------------------------------------

_template_ready = False


def _ensure_template():
    """Migrate a template database once per run; each benchmark clones it in a fraction of a
    second instead of migrating for ten."""
    global _template_ready
    if _template_ready:
        return
    say(f"  migrating the template database {TEMPLATE_DB} ...")
    _admin_execute(
        f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)', f'CREATE DATABASE "{TEMPLATE_DB}"'
    )
    env = {**os.environ, "DATABASE_URL": _with_path(os.environ["DATABASE_URL"], "/" + TEMPLATE_DB)}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    _template_ready = True


def drop_template():
    global _template_ready
    _admin_execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
    _template_ready = False


@contextlib.contextmanager
def fresh_database():
    """A migrated, empty ``itsm_bench`` for one benchmark, dropped afterwards."""
    from django.db import connections

    _ensure_template()
    connections.close_all()
    _admin_execute(
        f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)',
        f'CREATE DATABASE "{BENCH_DB}" TEMPLATE "{TEMPLATE_DB}"',
    )
    try:
        yield
    finally:
        connections.close_all()
        _admin_execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def analyze(*tables):
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


# --- bulk loading ------------------------------------------------------------------------------


def copy_rows(table: str, columns: Iterable[str], rows: Iterable[tuple], *, total: int, desc=""):
    """COPY ``rows`` (tuples of Python values in ``columns`` order) into ``table`` in binary
    format, typed from the catalog (several times faster than text for dates and intervals),
    with a progress bar. Returns the number of rows written."""
    from django.db import connection
    from tqdm import tqdm

    columns = list(columns)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
            " WHERE a.attrelid = %s::regclass AND a.attnum > 0",
            [table],
        )
        types = dict(cursor.fetchall())
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    written = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(sql) as copy,
        tqdm(
            total=total,
            desc=desc or table,
            unit="row",
            unit_scale=True,
            mininterval=1,
            file=sys.stderr,
            leave=False,
        ) as bar,
    ):
        copy.set_types([types[c] for c in columns])
        for row in rows:
            copy.write_row(row)
            written += 1
            if written % 10_000 == 0:
                bar.update(10_000)
        bar.update(written % 10_000)
    return written


def table_of(model) -> str:
    return model._meta.db_table


# --- subprocesses ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A subprocess in its own process group, logging to a file; stopped with SIGTERM, then
    SIGKILL, to the group it leads (so a Celery or gunicorn master takes its children along)."""

    def __init__(self, name, argv, *, env=None, log_dir: Path, ready: str | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_dir / f"{name}.log"
        self.ready = ready
        self.popen = None

    def start(self, timeout=60):
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.ready:
            self.wait_for(self.ready, timeout)
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.output()):
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{self.tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.tail()}")

    def cpu_seconds(self):
        """CPU time (user + system) used so far by the live processes of the group."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.popen.pid:  # fields[2] is the process group
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks

    def tail(self, lines=30):
        return "\n".join(self.output().splitlines()[-lines:])

    def stop(self, timeout=15):
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children of a group leader that already exited (e.g. prefork children).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def celery_worker(log_dir, *, concurrency=2, env=None, name="worker"):
    return Process(
        name,
        [BIN / "celery", "-A", "itsm", "worker", "-n", f"{name}@%h"]
        + f"--concurrency {concurrency} --pool prefork -l INFO".split()
        + ["--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env,
        log_dir=log_dir,
        ready=r"ready\.",
    )


def celery_beat(log_dir, *, env=None):
    return Process(
        "beat",
        [BIN / "celery", "-A", "itsm", "beat", "-l", "INFO", "-s", log_dir / "celerybeat-schedule"],
        env=env,
        log_dir=log_dir,
        ready=r"beat: Starting",
    )


def gunicorn(log_dir, *, port, workers=2, env=None):
    return Process(
        "gunicorn",
        [BIN / "gunicorn", "itsm.wsgi", "-b", f"127.0.0.1:{port}"]
        + f"-w {workers} --access-logfile - --log-level info".split(),
        env=env,
        log_dir=log_dir,
        ready=r"Booting worker",
    )


# --- the SMTP sink -----------------------------------------------------------------------------

_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class SmtpSink:
    """An aiosmtpd server on loopback that keeps nothing but each message's Message-ID, when
    it arrived, and how many times each id was seen."""

    def __init__(self):
        self.port = free_port()
        self.seen = Counter()
        self.first_at = None
        self.last_at = None
        self.without_id = 0
        self._lock = threading.Lock()
        self.controller = None

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        match = _MESSAGE_ID.search(envelope.original_content or envelope.content)
        now = time.perf_counter()
        with self._lock:
            if match:
                self.seen[match.group(1).decode()] += 1
            else:
                self.without_id += 1
            self.first_at = self.first_at or now
            self.last_at = now
        return "250 OK"

    @property
    def received(self):
        return sum(self.seen.values()) + self.without_id

    def start(self):
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller is not None:
            self.controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}"


# --- profiling ---------------------------------------------------------------------------------


def should_profile(quick, *, missed):
    """Profile where a target is missed in a full run (CI's quick run stays short), or always
    with ``python -m bench --profile``."""
    return bool(os.environ.get("BENCH_PROFILE")) or (missed and not quick)


@contextlib.contextmanager
def profiled(name, enabled=True):
    """Profile the block with pyinstrument and save the text report under bench/results/."""
    if not enabled:
        yield None
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        yield profiler
    finally:
        profiler.stop()
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"profile-{name}.txt"
        path.write_text(profiler.output_text(unicode=True, color=False, show_all=False))
        path.with_suffix(".html").write_text(profiler.output_html())
        say(f"  profile written to {path.relative_to(ROOT)} (and .html, every frame)")


def chunks(iterable: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
