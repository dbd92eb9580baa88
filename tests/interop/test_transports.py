"""paho-mqtt over Pigeon's other listeners: TLS (tls_set with the CA that
signed the broker's certificate), WebSocket (transport="websockets") and
WebSocket over TLS, in MQTT 3.1.1 and 5.0, each heard by a subscriber on
plain TCP and the other way round."""
import queue

import paho.mqtt.client as mqtt
import pytest

PROTOCOLS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}
KINDS = ["tls", "ws", "wss"]


def client(transports, kind, protocol):
    """A connected paho client on listener `kind` ("mqtt", "tls", "ws", "wss")."""
    websocket = kind in ("ws", "wss")
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                    protocol=protocol,
                    transport="websockets" if websocket else "tcp")
    if websocket:
        c.ws_set_options(path="/mqtt")
    if kind in ("tls", "wss"):
        c.tls_set(ca_certs=transports["ca"])
    c.inbox = queue.Queue()
    c.connected = queue.Queue()
    c.subscribed = queue.Queue()
    c.on_message = lambda _c, _u, msg: c.inbox.put(msg)
    c.on_connect = lambda _c, _u, flags, rc, _p=None: c.connected.put(rc)
    c.on_subscribe = lambda *args: c.subscribed.put(args)
    c.connect("localhost", transports[kind], keepalive=30)
    c.loop_start()
    rc = c.connected.get(timeout=10)
    assert not rc.is_failure, rc
    return c


def stop(c):
    c.disconnect()
    c.loop_stop()


@pytest.mark.parametrize("version", PROTOCOLS)
@pytest.mark.parametrize("kind", KINDS)
def test_paho_over_each_transport(transports, kind, version):
    protocol = PROTOCOLS[version]
    there = client(transports, kind, protocol)
    here = client(transports, "mqtt", protocol)
    for c in (there, here):
        c.subscribe(f"transports/{kind}/#", 1)
        c.subscribed.get(timeout=5)
    # Larger than one read of the broker, so packets cross frames.
    payload = b"x" * 70000
    there.publish(f"transports/{kind}/out", payload, qos=1).wait_for_publish(timeout=10)
    here.publish(f"transports/{kind}/in", b"to " + kind.encode(), qos=2).wait_for_publish(timeout=10)
    got_there = {m.topic: m.payload for m in (there.inbox.get(timeout=10), there.inbox.get(timeout=10))}
    got_here = {m.topic: m.payload for m in (here.inbox.get(timeout=10), here.inbox.get(timeout=10))}
    expected = {f"transports/{kind}/out": payload, f"transports/{kind}/in": b"to " + kind.encode()}
    assert got_there == expected
    assert got_here == expected
    stop(there)
    stop(here)


def test_a_client_that_does_not_trust_the_certificate_is_refused(transports):
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    c.tls_set()  # the system's CAs, which did not sign the test certificate
    with pytest.raises(Exception) as refused:
        c.connect("localhost", transports["tls"], keepalive=30)
    assert "certificate" in str(refused.value).lower()
