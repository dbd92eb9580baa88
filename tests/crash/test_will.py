"""A client's will when the broker, not the client, dies: the client's
connection ended without DISCONNECT, so the will is due (MQTT-3.1.2-8 in
3.1.1 and 5.0). The restarted broker publishes the wills of the persistent
sessions that were connected when it was killed."""
import os
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


def test_the_will_of_a_client_connected_when_the_broker_was_killed_is_sent(tmp_path):
    # MQTT-3.1.2-8 (5.0)
    broker = Broker(os.environ.get("PIGEON_BIN", default_pigeon_bin()), [], str(tmp_path))
    broker.start()
    try:
        watcher = persistent_client("watcher", broker.port)
        received = []
        watcher.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
        watcher.subscribe("status/#", 1)
        time.sleep(0.3)
        watcher.disconnect()
        watcher.loop_stop()
        device = persistent_client("device", broker.port, will=("status/device", b"offline"))
        assert wait_until(device.is_connected)
        time.sleep(0.3)  # the session and its will are on disk before CONNACK

        broker.kill()
        device.loop_stop()
        broker.start()
        watcher = persistent_client("watcher", broker.port)
        watcher.on_message = lambda _c, _u, m: received.append((m.topic, m.payload))
        assert wait_until(lambda: ("status/device", b"offline") in received), \
            f"no will after the restart; received {received}"
        watcher.disconnect()
        watcher.loop_stop()
    finally:
        broker.stop()


def test_a_client_that_said_goodbye_leaves_no_will_behind(tmp_path):
    # MQTT-3.1.2-10 (5.0): a normal DISCONNECT discards the will.
    broker = Broker(os.environ.get("PIGEON_BIN", default_pigeon_bin()), [], str(tmp_path))
    broker.start()
    try:
        watcher = persistent_client("watcher", broker.port)
        watcher.subscribe("status/#", 1)
        time.sleep(0.3)
        watcher.disconnect()
        watcher.loop_stop()
        device = persistent_client("device", broker.port, will=("status/device", b"offline"))
        assert wait_until(device.is_connected)
        device.disconnect()
        device.loop_stop()
        time.sleep(0.3)
        broker.kill()
        broker.start()
        received = []
        watcher = persistent_client("watcher", broker.port)
        watcher.on_message = lambda _c, _u, m: received.append(m.payload)
        time.sleep(1.5)
        assert received == [], f"a will was sent after a normal DISCONNECT: {received}"
        watcher.disconnect()
        watcher.loop_stop()
    finally:
        broker.stop()
