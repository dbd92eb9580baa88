"""A full disk: the broker stops acknowledging what it cannot store, keeps
serving everything else, loses nothing it acknowledged, and acknowledges
again once space returns. The data directory is a tmpfs of a few MiB,
mounted for the test (root only: CI runs as root) and grown to give the
space back."""
import os
import subprocess
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from crash_test import Broker, default_pigeon_bin

PAYLOAD = b"x" * 4096
SMALL = "3m"


@pytest.fixture
def small_disk(tmp_path):
    """A directory on a 3 MiB tmpfs, unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def grow(mount_point):
    subprocess.run(["mount", "-o", "remount,size=64m", str(mount_point)], check=True)


class V5Client:
    """A paho MQTT 5 client that records acknowledgement reason codes."""

    def __init__(self, port, client_id, persistent=False):
        self.paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                protocol=mqtt.MQTTv5)
        self.codes = {}
        self.received = []
        self.granted = threading.Event()
        self.paho.on_publish = self._on_publish
        self.paho.on_subscribe = lambda *_: self.granted.set()
        self.paho.on_message = lambda _c, _u, m: self.received.append(m.payload)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        self.paho.reconnect_delay_set(min_delay=0.05, max_delay=0.2)
        self.paho.connect("127.0.0.1", port, clean_start=not persistent, properties=props)
        self.paho.loop_start()

    def subscribe(self, topic_filter, qos):
        """Subscribes and waits for the SUBACK."""
        assert wait_until(self.paho.is_connected), "not connected"
        self.granted.clear()
        self.paho.subscribe(topic_filter, qos)
        assert self.granted.wait(10), f"no SUBACK for {topic_filter}"

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties):
        self.codes[mid] = reason_code

    def publish(self, topic, payload, qos=1, timeout=10):
        """The reason code the broker answered with (None: no answer)."""
        info = self.paho.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout)
        return self.codes.get(info.mid)

    def close(self):
        self.paho.disconnect()
        self.paho.loop_stop()


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_a_full_disk_stops_acknowledgements_until_space_returns(small_disk, tmp_path):
    broker = Broker(os.environ.get("PIGEON_BIN", default_pigeon_bin()), [], str(tmp_path),
                    data_dir=str(small_disk))
    broker.start()
    try:
        # An offline persistent session: its messages must be stored.
        offline = V5Client(broker.port, "offline", persistent=True)
        offline.subscribe("fill/#", 1)
        offline.close()

        filler = V5Client(broker.port, "filler")
        acked = []
        refusal = None
        for n in range(3000):  # 12 MiB: far beyond the 3 MiB disk
            code = filler.publish("fill/x", b"%d:" % n + PAYLOAD)
            if code is None or code.is_failure:
                refusal = code
                break
            acked.append(n)
        assert acked, "nothing was acknowledged before the disk filled"
        assert refusal is not None and refusal.value == 0x97, \
            f"a message that could not be stored got {refusal} (Quota exceeded expected)"

        # Everything else keeps working: QoS 0 between clean sessions.
        listener = V5Client(broker.port, "listener")
        listener.subscribe("live", 0)
        filler.publish("live", b"still here", qos=0)
        assert wait_until(lambda: b"still here" in listener.received), \
            "QoS 0 traffic stopped while the disk was full"

        # Space returns: acknowledgements resume without a restart.
        grow(small_disk)
        assert wait_until(lambda: (c := filler.publish("fill/x", b"after:" + PAYLOAD)) is not None
                          and not c.is_failure, timeout=15), \
            "acknowledgements did not resume once space returned"

        # Nothing acknowledged was lost.
        offline = V5Client(broker.port, "offline", persistent=True)
        expected = {b"%d" % n for n in acked}
        got = lambda: {p.split(b":")[0] for p in offline.received}  # noqa: E731
        assert wait_until(lambda: expected <= got(), timeout=20), \
            f"{len(expected - got())} acknowledged messages were lost"
        log = open(broker.log_path).read()
        assert log.count("store: write failed") == 1, log
        assert "store: writing again" in log, log
        for client in (offline, filler, listener):
            client.close()
    finally:
        broker.stop()
