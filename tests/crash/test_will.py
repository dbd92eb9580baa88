"""A client's will when the broker, not the client, dies: the client's
connection ended without DISCONNECT, so the will is due (MQTT-3.1.2-8 in
3.1.1 and 5.0). The restarted broker publishes the wills of the persistent
sessions that were connected when it was killed."""
import os
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from crash_test import Broker, default_pigeon_bin


def persistent_client(client_id, port, will=None):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    if will:
        client.will_set(*will, qos=1)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    return client


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.05)
    return condition()


def watcher_away_and_device_connected(port):
    """A persistent watcher subscribed to status/# that is away, and a
    connected device whose will says it went offline."""
    watcher = persistent_client("watcher", port)
    granted = threading.Event()
    watcher.on_subscribe = lambda *_: granted.set()
    assert wait_until(watcher.is_connected)
    watcher.subscribe("status/#", 1)
    assert granted.wait(10), "no SUBACK"
    watcher.disconnect()
    watcher.loop_stop()
    device = persistent_client("device", port, will=("status/device", b"offline"))
    assert wait_until(device.is_connected)
    time.sleep(0.3)  # the session and its will are on disk before CONNACK
    return device


def wills_received_after_restart(broker, seconds):
    """Restarts the killed broker; the payloads the watcher then receives."""
    broker.start()
    received = []
    watcher = persistent_client("watcher", broker.port)
    watcher.on_message = lambda _c, _u, m: received.append(m.payload)
    wait_until(lambda: received, timeout=seconds)
    time.sleep(0.2)
    watcher.disconnect()
    watcher.loop_stop()
    return received


def test_the_will_of_a_client_connected_when_the_broker_was_killed_is_sent(tmp_path):
    # MQTT-3.1.2-8 (5.0)
    broker = Broker(os.environ.get("PIGEON_BIN", default_pigeon_bin()), [], str(tmp_path))
    broker.start()
    try:
        device = watcher_away_and_device_connected(broker.port)
        broker.kill()
        device.loop_stop()
        received = wills_received_after_restart(broker, 10)
        assert received == [b"offline"], f"expected the will once after the restart: {received}"
    finally:
        broker.stop()


def test_a_client_that_said_goodbye_leaves_no_will_behind(tmp_path):
    # MQTT-3.1.2-10 (5.0): a normal DISCONNECT discards the will.
    broker = Broker(os.environ.get("PIGEON_BIN", default_pigeon_bin()), [], str(tmp_path))
    broker.start()
    try:
        device = watcher_away_and_device_connected(broker.port)
        device.disconnect()
        device.loop_stop()
        time.sleep(0.3)
        broker.kill()
        received = wills_received_after_restart(broker, 1.5)
        assert received == [], f"a will was sent after a normal DISCONNECT: {received}"
    finally:
        broker.stop()
