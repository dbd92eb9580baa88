"""paho-mqtt with protocol=MQTTv5 against Pigeon: the MQTT 5 features
(issue 5) as a paho user reaches them, each test naming the spec statement
it checks."""
import queue
import socket
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

WAIT = 5


def v5_client(port, client_id="", clean=True, expiry=0, will=None, connect_props=None):
    """A started, connected paho MQTT 5 client; messages land in `.inbox`,
    CONNACK properties in `.connack`."""
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                    client_id=client_id, protocol=mqtt.MQTTv5)
    c.inbox = queue.Queue()
    connected = queue.Queue()
    c.on_message = lambda _c, _u, msg: c.inbox.put(msg)
    c.on_connect = lambda _c, _u, flags, rc, props: connected.put((flags, rc, props))
    if will:
        c.will_set(**will)
    props = connect_props or Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    c.connect("127.0.0.1", port, keepalive=30, clean_start=clean, properties=props)
    c.loop_start()
    flags, rc, connack = connected.get(timeout=WAIT)
    assert not rc.is_failure, rc
    c.session_present = flags.session_present
    c.connack = connack
    return c


def stop(c):
    c.disconnect()
    c.loop_stop()


def vanish(c):
    """Drops the connection without DISCONNECT, as a crashed client would."""
    c.loop_stop()
    c.socket().shutdown(socket.SHUT_RDWR)
    c.socket().close()


def subscribe(c, topic, options):
    done = queue.Queue()
    c.on_subscribe = lambda _c, _u, mid, codes, props: done.put(codes)
    c.subscribe(topic, options=options)
    codes = done.get(timeout=WAIT)
    assert not codes[0].is_failure, codes
    return codes


def published(c, topic, payload, qos=1, retain=False, props=None):
    info = c.publish(topic, payload, qos=qos, retain=retain, properties=props)
    info.wait_for_publish(timeout=WAIT)
    return info


def drain(c, wait=0.5):
    got = []
    while True:
        try:
            got.append(c.inbox.get(timeout=wait))
        except queue.Empty:
            return got


def test_connack_tells_paho_what_the_broker_offers_v5(broker):
    # §3.2.2.3: Receive Maximum 32, Topic Alias Maximum, Maximum Packet Size.
    c = v5_client(broker)
    assert c.connack.ReceiveMaximum == 32
    assert c.connack.TopicAliasMaximum == 64
    assert c.connack.MaximumPacketSize == 1024 * 1024
    stop(c)


def test_shared_subscription_splits_the_work_v5(broker):
    # §4.8.2: each message to one member of $share/workers/jobs.
    workers = [v5_client(broker, f"worker{n}") for n in range(3)]
    for w in workers:
        subscribe(w, "$share/workers/jobs", SubscribeOptions(qos=1))
    pub = v5_client(broker, "boss")
    for n in range(9):
        published(pub, "jobs", f"job {n}".encode())
    got = [drain(w) for w in workers]
    assert [len(g) for g in got] == [3, 3, 3]
    payloads = sorted(m.payload for g in got for m in g)
    assert payloads == sorted(f"job {n}".encode() for n in range(9))
    for c in workers + [pub]:
        stop(c)


def test_request_response_properties_pass_through_v5(broker):
    # MQTT-3.3.2-15/-16 (Response Topic, Correlation Data), MQTT-3.3.2-17
    # (User Properties in order), MQTT-3.3.2-4 (Payload Format Indicator),
    # MQTT-3.3.2-20 (Content Type); MQTT-3.1.2-28 Response Information only
    # when asked.
    props = Properties(PacketTypes.CONNECT)
    props.RequestResponseInformation = 1
    responder = v5_client(broker, "responder", connect_props=props)
    assert responder.connack.ResponseInformation == "response/responder"
    subscribe(responder, "service/time", SubscribeOptions(qos=1))
    requester = v5_client(broker, "requester")
    assert not hasattr(requester.connack, "ResponseInformation")
    subscribe(requester, "reply/requester", SubscribeOptions(qos=1))

    def answer(_c, _u, msg):
        p = Properties(PacketTypes.PUBLISH)
        p.CorrelationData = msg.properties.CorrelationData
        responder.publish(msg.properties.ResponseTopic, b"noon", qos=1, properties=p)
    responder.on_message = answer

    req = Properties(PacketTypes.PUBLISH)
    req.ResponseTopic = "reply/requester"
    req.CorrelationData = b"\x00req-42"
    req.UserProperty = [("b", "2"), ("a", "1"), ("b", "3")]
    req.PayloadFormatIndicator = 1
    req.ContentType = "text/plain"
    published(requester, "service/time", b"what time is it?", props=req)
    reply = requester.inbox.get(timeout=WAIT)
    assert reply.payload == b"noon"
    assert reply.properties.CorrelationData == b"\x00req-42"
    stop(responder)
    stop(requester)


def test_user_properties_and_format_reach_the_subscriber_in_order_v5(broker):
    sub = v5_client(broker, "s")
    subscribe(sub, "props", SubscribeOptions(qos=1))
    pub = v5_client(broker, "p")
    p = Properties(PacketTypes.PUBLISH)
    p.UserProperty = [("z", "1"), ("a", "2"), ("z", "3")]
    p.PayloadFormatIndicator = 1
    p.ContentType = "application/json"
    published(pub, "props", b'{"ok": true}', props=p)
    m = sub.inbox.get(timeout=WAIT)
    assert m.properties.UserProperty == [("z", "1"), ("a", "2"), ("z", "3")]
    assert m.properties.PayloadFormatIndicator == 1
    assert m.properties.ContentType == "application/json"
    stop(sub)
    stop(pub)


def test_message_expiry_drops_what_waited_too_long_v5(broker):
    # MQTT-3.3.2-5 (not delivered once expired), MQTT-3.3.2-6 (what is
    # left of the interval is sent).
    away = v5_client(broker, "away", clean=True, expiry=600)
    subscribe(away, "news", SubscribeOptions(qos=1))
    stop(away)
    pub = v5_client(broker, "p")
    for text, secs in [(b"stale", 1), (b"fresh", 120)]:
        p = Properties(PacketTypes.PUBLISH)
        p.MessageExpiryInterval = secs
        published(pub, "news", text, props=p)
    time.sleep(2.2)
    back = v5_client(broker, "away", clean=False, expiry=600)
    assert back.session_present
    got = drain(back)
    assert [m.payload for m in got] == [b"fresh"]
    assert 100 <= got[0].properties.MessageExpiryInterval <= 118
    stop(back)
    stop(pub)


def test_will_delay_and_reconnecting_in_time_v5(broker):
    # MQTT-3.1.2-8: a delayed will goes after its delay; MQTT-3.1.3-9: not
    # if the client is back in time.
    watcher = v5_client(broker, "watcher")
    subscribe(watcher, "status/+", SubscribeOptions(qos=1))
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    for name in ["gone", "back"]:
        c = v5_client(broker, name, expiry=600,
                      will=dict(topic=f"status/{name}", payload=b"offline", qos=1, properties=wp))
        vanish(c)
    time.sleep(0.5)
    back = v5_client(broker, "back", clean=False, expiry=600)
    assert drain(watcher, wait=1.0) == [], "nothing before the delay"
    got = drain(watcher, wait=2.5)
    assert [m.topic for m in got] == ["status/gone"]
    stop(back)
    stop(watcher)


def test_subscription_options_no_local_and_retain_handling_v5(broker):
    # MQTT-3.8.3-3 (No Local), MQTT-3.3.1-10/-11 (Retain Handling 1, 2),
    # MQTT-3.3.1-12 (Retain As Published).
    c = v5_client(broker, "chat")
    published(c, "room/topic", b"retained", retain=True)
    subscribe(c, "room/#", SubscribeOptions(qos=1, noLocal=True, retainHandling=2))
    published(c, "room/1", b"mine")
    other = v5_client(broker, "other")
    published(other, "room/1", b"theirs", retain=True)
    assert [m.payload for m in drain(c)] == [b"theirs"]
    rap = v5_client(broker, "rap")
    subscribe(rap, "room/1", SubscribeOptions(qos=1, retainAsPublished=True, retainHandling=1))
    first = rap.inbox.get(timeout=WAIT)
    assert first.retain and first.payload == b"theirs"
    published(other, "room/1", b"live", retain=True)
    live = rap.inbox.get(timeout=WAIT)
    assert live.retain, "Retain As Published keeps the flag"
    for x in (c, other, rap):
        stop(x)


def test_topic_alias_from_paho_v5(broker):
    # §3.3.2.3.4: paho names the topic once, then by alias alone.
    sub = v5_client(broker, "s")
    subscribe(sub, "very/long/topic/name/for/aliasing", SubscribeOptions(qos=1))
    pub = v5_client(broker, "p")
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 5
    published(pub, "very/long/topic/name/for/aliasing", b"1", props=first)
    again = Properties(PacketTypes.PUBLISH)
    again.TopicAlias = 5
    published(pub, "", b"2", props=again)
    got = drain(sub)
    assert [(m.topic, m.payload) for m in got] == [
        ("very/long/topic/name/for/aliasing", b"1"),
        ("very/long/topic/name/for/aliasing", b"2"),
    ]
    stop(sub)
    stop(pub)
