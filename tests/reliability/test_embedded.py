"""The embedded transport (itsm/embedded_broker.py: kombu's filesystem transport with a folder
per queue and atomic writes): messages come out whole and in order, a file that someone else
left undecodable does not stop the consumer, and a queue's backlog is its own."""

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
    queue.put({"n": 1})  # makes the queue's folder
    queue.get(timeout=1).ack()
    # As kombu's own writer leaves them between creating the file and writing it; named to
    # sort before the message put next.
    (tmp_path / "deliveries" / "00000000000000000001_empty.msg").write_bytes(b"")
    (tmp_path / "deliveries" / "00000000000000000002_partial.msg").write_bytes(b'{"body": "eyJ')
    queue.put({"n": 2})

    message = queue.get(timeout=1)

    assert message.payload == {"n": 2}
    message.ack()
    queue.close()


def test_messages_come_out_in_order_also_those_put_while_a_listing_is_taken(connection):
    queue = connection.SimpleQueue("deliveries")
    for n in range(3):
        queue.put({"n": n})
    first = queue.get(timeout=1)  # the consumer has listed 0, 1, 2
    for n in range(3, 5):
        queue.put({"n": n})

    got = [first.payload["n"]] + [queue.get(timeout=1).payload["n"] for _ in range(4)]

    assert got == [0, 1, 2, 3, 4]
    with pytest.raises(queue.Empty):
        queue.get(timeout=0.1)
    queue.close()


def test_each_queue_keeps_its_own_messages_and_purge_empties_only_its_own(connection):
    deliveries, sweeps = connection.SimpleQueue("deliveries"), connection.SimpleQueue("sweeps")
    for n in range(5):
        deliveries.put({"delivery": n})
    sweeps.put({"sweep": 1})

    assert sweeps.get(timeout=1).payload == {"sweep": 1}  # not behind the deliveries
    assert deliveries.qsize() == 5
    assert deliveries.clear() == 5

    assert deliveries.qsize() == 0
    with pytest.raises(deliveries.Empty):
        deliveries.get(timeout=0.1)
    deliveries.close()
    sweeps.close()


def test_two_consumers_never_take_the_same_message(tmp_path):
    folder = str(tmp_path)
    options = {"data_folder_in": folder, "data_folder_out": folder, "store_processed": False}
    with (
        Connection("filesystem://", transport=Transport, transport_options=options) as one,
        Connection("filesystem://", transport=Transport, transport_options=options) as two,
    ):
        producer, consumer = one.SimpleQueue("deliveries"), two.SimpleQueue("deliveries")
        for n in range(20):
            producer.put({"n": n})
        taken = []
        for n in range(20):  # both have listed all 20 after their first get
            queue = producer if n % 2 else consumer
            taken.append(queue.get(timeout=1).payload["n"])

        assert sorted(taken) == list(range(20))
        producer.close()
        consumer.close()
