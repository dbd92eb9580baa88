"""paho-mqtt (the client most MQTT users learn with) against Pigeon, in
MQTT 3.1.1 and 5.0: the things a paho user does on day one."""
import queue
import time

import paho.mqtt.client as mqtt
import pytest

PROTOCOLS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}


def client(port, protocol, client_id="", clean=True, will=None):
    """A started paho client, connected, whose messages land in `.inbox`."""
    kwargs = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                  client_id=client_id, protocol=protocol)
    if protocol != mqtt.MQTTv5:
        kwargs["clean_session"] = clean
    c = mqtt.Client(**kwargs)
    c.inbox = queue.Queue()
    c.connected = queue.Queue()
    c.on_message = lambda _c, _u, msg: c.inbox.put(msg)
    c.on_connect = lambda _c, _u, flags, rc, _p=None: c.connected.put((flags, rc))
    if will:
        c.will_set(*will)
    props = None
    if protocol == mqtt.MQTTv5:
        from paho.mqtt.properties import Properties
        from paho.mqtt.packettypes import PacketTypes
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0 if clean else 3600
        c.connect("127.0.0.1", port, keepalive=30, clean_start=clean, properties=props)
    else:
        c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    flags, rc = c.connected.get(timeout=5)
    assert not rc.is_failure, rc
    c.session_present = flags.session_present
    return c


def stop(c):
    c.disconnect()
    c.loop_stop()


def subscribe(c, topic, qos):
    done = queue.Queue()
    c.on_subscribe = lambda *args: done.put(args)
    c.subscribe(topic, qos)
    done.get(timeout=5)


@pytest.mark.parametrize("version", PROTOCOLS)
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_and_subscribe_at_each_qos(broker, version, qos):
    sub = client(broker, PROTOCOLS[version])
    subscribe(sub, "paho/+/temp", qos)
    pub = client(broker, PROTOCOLS[version])
    info = pub.publish("paho/kitchen/temp", b"21.5", qos=qos)
    info.wait_for_publish(timeout=5)
    assert info.is_published()
    msg = sub.inbox.get(timeout=5)
    assert (msg.topic, msg.payload, msg.qos) == ("paho/kitchen/temp", b"21.5", qos)
    stop(pub)
    stop(sub)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_retained_message_reaches_a_late_subscriber(broker, version):
    pub = client(broker, PROTOCOLS[version])
    pub.publish("paho/status", b"online", qos=1, retain=True).wait_for_publish(timeout=5)
    late = client(broker, PROTOCOLS[version])
    subscribe(late, "paho/#", 1)
    msg = late.inbox.get(timeout=5)
    assert (msg.payload, msg.retain) == (b"online", True)
    stop(pub)
    stop(late)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_will_is_published_when_a_client_vanishes(broker, version):
    watcher = client(broker, PROTOCOLS[version])
    subscribe(watcher, "paho/wills/#", 1)
    doomed = client(broker, PROTOCOLS[version], will=("paho/wills/doomed", b"gone", 1, False))
    # Close the socket without DISCONNECT, as a crash would.
    doomed.loop_stop()
    doomed.socket().close()
    msg = watcher.inbox.get(timeout=5)
    assert (msg.topic, msg.payload) == ("paho/wills/doomed", b"gone")
    stop(watcher)


@pytest.mark.parametrize("version", PROTOCOLS)
def test_persistent_session_gets_messages_sent_while_it_was_away(broker, version):
    proto = PROTOCOLS[version]
    s = client(broker, proto, client_id=f"paho-keeper-{version}", clean=False)
    subscribe(s, "paho/jobs", 1)
    stop(s)
    pub = client(broker, proto)
    for n in range(3):
        pub.publish("paho/jobs", f"job {n}".encode(), qos=1).wait_for_publish(timeout=5)
    stop(pub)
    s = client(broker, proto, client_id=f"paho-keeper-{version}", clean=False)
    assert s.session_present
    got = [s.inbox.get(timeout=5).payload for _ in range(3)]
    assert got == [b"job 0", b"job 1", b"job 2"]
    stop(s)
