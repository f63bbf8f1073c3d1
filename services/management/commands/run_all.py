"""``manage.py run_all``: the web server, Celery workers and Celery beat in the foreground.

Two workers, one per queue (``worker_commands``): deliveries may be slow (a receiver that hangs,
a stalled relay), so the sweeps have a worker of their own and run on time whatever the
deliveries do. Production runs the same layout (README "Workers").

Each process runs in its own session so a Ctrl-C in the terminal reaches only this command,
which then stops them all in order and waits for them: a worker finishing its task is not cut
off by the same signal twice. A worker or beat that exits is logged and restarted, after a
back-off that doubles up to ``MAX_BACKOFF`` while it keeps dying; the web keeps serving
meanwhile. If the web itself exits, the others are stopped and the command exits non-zero, so a
supervisor (or the person watching) sees that something broke.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand

# How long a process may take to stop after SIGTERM before it (and its children) are killed.
STOP_TIMEOUT = 15
# Restart back-off for a worker or beat: doubled per quick death, reset after a long run.
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
HEALTHY_RUN = 60.0
COLOURS = {"web": "\033[36m", "worker": "\033[33m", "sweeper": "\033[32m", "beat": "\033[35m"}


def worker_commands(python, concurrency):
    """The worker layout: ``worker`` takes the deliveries (and expansions) with ``concurrency``
    processes, ``sweeper`` the SLA and outbox sweeps with one process of its own."""
    celery = [python, "-m", "celery", "-A", "itsm", "worker", "-l", "info"]
    return {
        "worker": [*celery, "-Q", "deliveries", "-c", str(concurrency), "-n", "deliveries@%h"],
        "sweeper": [*celery, "-Q", "sweeps", "-c", "2", "-n", "sweeps@%h"],
    }


RESET = "\033[0m"


class Command(BaseCommand):
    help = "Run the web server, Celery workers (deliveries, sweeps) and beat until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--web-workers", type=int, default=2, help="gunicorn worker processes (default 2)"
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=2,
            help="processes of the deliveries worker (default 2; the sweeps worker has 1)",
        )
        parser.add_argument("--no-beat", action="store_true", help="do not start Celery beat")
        parser.add_argument(
            "--runserver",
            action="store_true",
            help="serve with Django's runserver instead of gunicorn (the default when DEBUG)",
        )

    def handle(self, *args, **options):
        self._lock = threading.Lock()
        self._colour = self.stdout.isatty() and not options.get("no_color")
        commands = self._commands(options)
        stop = threading.Event()
        received = []

        def on_signal(signum, frame):
            received.append(signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, on_signal)

        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        processes = {}
        try:
            for name, argv in commands.items():
                processes[name] = self._start(name, argv, env)
            self._say(f"web on http://{options['host']}:{options['port']}/ ; Ctrl-C stops all")
            self._supervise(commands, processes, env, stop)
        finally:
            self._stop_all(processes)
        if received:
            self._say(f"stopped on {signal.Signals(received[0]).name}")
            return
        sys.exit(1)

    def _commands(self, options):
        python = sys.executable
        bind = f"{options['host']}:{options['port']}"
        if options["runserver"] or settings.DEBUG:
            web = [python, "manage.py", "runserver", "--noreload", bind]
        else:
            web = [
                python, "-m", "gunicorn", "itsm.wsgi:application",
                "--bind", bind,
                "--workers", str(options["web_workers"]),
                "--access-logfile", "-",
                "--graceful-timeout", str(STOP_TIMEOUT - 5),
            ]  # fmt: skip
        commands = {"web": web, **worker_commands(python, options["concurrency"])}
        if not options["no_beat"]:
            commands["beat"] = [
                python, "-m", "celery", "-A", "itsm", "beat",
                "-l", "info", "-s", settings.CELERY_BEAT_SCHEDULE_FILENAME,
            ]  # fmt: skip
        return commands

    def _supervise(self, commands, processes, env, stop):
        """Until a signal: restart a worker or beat that exited, after its back-off; return
        when the web exits."""
        backoff = dict.fromkeys(commands, FIRST_BACKOFF)
        restart_at = {}
        while not stop.wait(0.2):
            now = time.monotonic()
            for name, process in processes.items():
                if name in restart_at or process.poll() is None:
                    continue
                if name == "web":
                    self._say(f"web exited with code {process.returncode}; stopping the others")
                    return
                if now - process.started_at > HEALTHY_RUN:
                    backoff[name] = FIRST_BACKOFF
                delay = backoff[name]
                backoff[name] = min(delay * 2, MAX_BACKOFF)
                restart_at[name] = now + delay
                self._say(
                    f"{name} exited with code {process.returncode}; restarting it in {delay:g} s"
                )
            for name, at in list(restart_at.items()):
                if at <= now:
                    del restart_at[name]
                    processes[name] = self._start(name, commands[name], env)

    def _start(self, name, argv, env):
        process = subprocess.Popen(
            argv,
            cwd=settings.BASE_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.started_at = time.monotonic()
        self._say(f"started {name} (pid {process.pid}): {' '.join(argv[1:])}")
        threading.Thread(target=self._relay, args=(name, process.stdout), daemon=True).start()
        return process

    def _relay(self, name, stream):
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip("\n")
            prefix = f"{name:>6} | "
            if self._colour:
                prefix = f"{COLOURS.get(name, '')}{prefix}{RESET}"
            with self._lock:
                self.stdout.write(prefix + line)
                self.stdout.flush()
        stream.close()

    def _say(self, message):
        with self._lock:
            self.stdout.write(f"run_all: {message}")
            self.stdout.flush()

    def _stop_all(self, processes):
        """SIGTERM each live process (web first, so no new work arrives), wait, then kill the
        process group of any that is still there, reaping whatever it left behind."""
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for name, process in processes.items():
            try:
                process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self._say(f"{name} did not stop in {STOP_TIMEOUT}s; killing it")
            # Each process leads its own group: this also ends pool children it orphaned.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
