"""The embedded transport (kombu's filesystem transport with atomic writes): a message file that
is empty or half written never reaches the reader, and one that someone else left undecodable
does not stop the consumer."""

import pytest
from kombu import Connection

from itsm.embedded_broker import Transport


@pytest.fixture
def connection(tmp_path):
    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "store_processed": False}
    with Connection("filesystem://", transport=Transport, transport_options=options) as conn:
        yield conn


def test_an_empty_or_partial_message_file_does_not_stop_the_consumer(connection, tmp_path):
    queue = connection.SimpleQueue("deliveries")
    # As kombu's own writer leaves them between creating the file and writing it.
    (tmp_path / "1_empty.deliveries.msg").write_bytes(b"")
    (tmp_path / "2_partial.deliveries.msg").write_bytes(b'{"body": "eyJ')
    queue.put({"n": 2})

    message = queue.get(timeout=1)

    assert message.payload == {"n": 2}
    message.ack()
    queue.close()
