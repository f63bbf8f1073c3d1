"""Calls to the broker that a request may wait for only briefly.

A hung Redis (a stopped process, a full network buffer) accepts the TCP connection and never
answers, so no connect timeout fires and the caller waits as long as the socket lets it. A
request must answer within a second whatever the broker does, so the call runs in a background
thread and the caller waits at most ``wait`` seconds for it. While an earlier call is stuck
(outstanding for longer than its wait), later ones fail at once instead of piling threads up
behind it: the broker is known to be hung, and whatever the call was for is already committed
(the outbox sweep sends it later).
"""

import concurrent.futures
import os
import threading
import time

THREADS = 4  # a threaded web server may publish from several requests at once


class BrokerBusy(TimeoutError):
    """The broker did not answer in time (or an earlier call to it is still waiting)."""


class BoundedCaller:
    """A few background threads per process; ``call(fn, wait)`` returns ``fn()`` or raises
    ``BrokerBusy``. The threads themselves are bounded by the broker's socket timeout."""

    def __init__(self, name):
        self.name = name
        self._lock = threading.Lock()
        self._pid = None
        self._executor = None
        self._pending = []

    def _ready_executor(self):
        # A forked process (a Celery pool child, a gunicorn worker) gets threads of its own.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=THREADS, thread_name_prefix=self.name
            )
            self._pending = []
        return self._executor

    def call(self, fn, wait):
        now = time.monotonic()
        with self._lock:
            executor = self._ready_executor()
            self._pending = [(f, late) for f, late in self._pending if not f.done()]
            if any(late < now for _f, late in self._pending):
                raise BrokerBusy(f"{self.name}: an earlier call to the broker is still waiting")
            future = executor.submit(fn)
            self._pending.append((future, now + wait))
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            raise BrokerBusy(f"{self.name}: no answer from the broker in {wait} s") from None
