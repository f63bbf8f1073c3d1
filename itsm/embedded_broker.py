"""The embedded Celery transport: kombu's filesystem transport, made safe and quick.

kombu's own transport keeps every queue's messages in one folder and, for each message it
takes, lists and sorts that whole folder and scans it for the queue's names. With a backlog of
a few thousand messages that costs milliseconds per message, and every consumer pays it every
polling interval (10 ms): the sweeps worker, whose queue is empty, spent a good part of a core
listing the deliveries backlog, and the deliveries worker fell to about 12 tasks/s (bench E1).
Here:

- each queue has a folder of its own (``<data folder>/<queue>/``), so a consumer lists only its
  queue's messages, and an empty queue costs one listing of an empty folder per poll;
- a consumer lists its folder once and takes messages from that listing until it is used up;
  a message put meanwhile is newer than all of them, so FIFO order holds;
- a message is written under a name the reader skips, then renamed into place (``os.replace``
  is atomic on one file system), so a reader sees a whole file or none (kombu creates the file,
  then writes it, and reads without the lock: 7 partial reads in 12,741 messages);
- a consumer claims a message by renaming it into ``<data folder>/.claimed/`` (the same file
  system; kombu moves it to the system's temporary folder, a copy when that is another file
  system), so two consumers never both take it;
- a file that still cannot be decoded (written by another program) is set aside, not fatal.

As with any kombu virtual transport, a message a worker had taken but not finished is gone if
the worker is killed: the outbox sweep re-dispatches what was not sent (the outbox row is the
promise). The short polling interval is in settings (``polling_interval``).
"""

import logging
import os
import uuid
from collections import deque
from time import monotonic_ns

from kombu.transport import filesystem
from kombu.transport.virtual import Empty
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

logger = logging.getLogger(__name__)

SUFFIX = ".msg"


def _folder_name(queue):
    # Queue names are Celery's ("deliveries", "worker@host.celery.pidbox"): never a path.
    return queue.replace(os.sep, "_").replace("\0", "_") or "_"


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._listed = {}  # queue -> deque of message names not yet taken, oldest first
        self._made = set()

    def _queue_folder(self, base, queue):
        folder = os.path.join(base, _folder_name(queue))
        if folder not in self._made:
            os.makedirs(folder, exist_ok=True)
            self._made.add(folder)
        return folder

    def _put(self, queue, payload, **kwargs):
        folder = self._queue_folder(self.data_folder_out, queue)
        # Zero-padded, so names sort in the order they were put (kombu's do not past a digit).
        name = f"{monotonic_ns():020d}_{uuid.uuid4().hex}{SUFFIX}"
        partial = os.path.join(folder, f".{name}.part")  # no SUFFIX: readers skip it
        with open(partial, "wb") as out:
            out.write(str_to_bytes(dumps(payload)))
        os.replace(partial, os.path.join(folder, name))

    @property
    def _claimed_base(self):
        if self.store_processed:
            return self.processed_folder
        # Inside the data folder: the same file system, so the claiming rename is atomic.
        return os.path.join(self.data_folder_in, ".claimed")

    def _names(self, folder):
        return sorted(n for n in os.listdir(folder) if n.endswith(SUFFIX) and n[0] != ".")

    def _get(self, queue):
        folder = self._queue_folder(self.data_folder_in, queue)
        listed = self._listed.get(queue)
        if not listed:
            listed = self._listed[queue] = deque(self._names(folder))
        claimed_folder = self._queue_folder(self._claimed_base, queue)
        while listed:
            name = listed.popleft()
            claimed = os.path.join(claimed_folder, name)
            try:
                os.rename(os.path.join(folder, name), claimed)
            except FileNotFoundError:
                continue  # another consumer took it first
            with open(claimed, "rb") as message:
                payload = message.read()
            if not self.store_processed:
                os.remove(claimed)
            try:
                return loads(bytes_to_str(payload))
            except ValueError:  # JSONDecodeError: a file someone else wrote half
                logger.error("skipped an undecodable message file %s in queue %s", name, queue)
        raise Empty()

    def _purge(self, queue):
        self._listed.pop(queue, None)
        folder = self._queue_folder(self.data_folder_in, queue)
        count = 0
        for name in self._names(folder):
            try:
                os.remove(os.path.join(folder, name))
            except FileNotFoundError:
                continue  # taken meanwhile
            count += 1
        return count

    def _size(self, queue):
        return len(self._names(self._queue_folder(self.data_folder_in, queue)))


class Transport(filesystem.Transport):
    Channel = Channel
