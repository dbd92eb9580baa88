#!/usr/bin/env python3
"""Writes the seed corpora: small valid packets of every type and version
(decode, roundtrip) and short sessions for the flow target. Run from fuzz/."""
import os

def h(s):
    return bytes.fromhex(s.replace(" ", ""))

MQTT, MQISDP, AB, AH = b"\x00\x04MQTT", b"\x00\x06MQIsdp", b"\x00\x03a/b", b"\x00\x03a/#"
PACKETS = {
    "connect-v311": b"\x10\x10" + MQTT + h("04 02 00 3c 00 04") + b"abcd",
    "connect-v5": b"\x10\x11" + MQTT + h("05 02 00 3c 00 00 04") + b"abcd",
    "connect-v31": b"\x10\x12" + MQISDP + h("03 02 00 3c 00 04") + b"abcd",
    "connect-v5-will": b"\x10\x1b" + MQTT + h("05 2e 00 3c 00 00 04") + b"abcd" + h("00") + AB + h("00 01") + b"w",
    "connack": h("20 02 00 00"),
    "connack-v5": h("20 03 00 00 00"),
    "publish-qos0": b"\x30\x07" + AB + b"hi",
    "publish-qos1": b"\x32\x09" + AB + h("00 01") + b"hi",
    "publish-qos2-v5": b"\x34\x0a" + AB + h("00 02 00") + b"hi",
    "publish-alias-v5": b"\x30\x0a" + AB + h("03 23 00 01") + b"x",
    "puback": h("40 02 00 01"),
    "puback-v5-code": h("40 03 00 01 10"),
    "pubrec": h("50 02 00 01"),
    "pubrel": h("62 02 00 01"),
    "pubcomp": h("70 02 00 01"),
    "subscribe": b"\x82\x08" + h("00 01") + AH + h("01"),
    "subscribe-v5": b"\x82\x09" + h("00 01 00") + AH + h("01"),
    "suback": h("90 03 00 01 01"),
    "unsubscribe": b"\xa2\x07" + h("00 01") + AH,
    "unsubscribe-v5": b"\xa2\x08" + h("00 01 00") + AH,
    "unsuback": h("b0 02 00 01"),
    "unsuback-v5": h("b0 04 00 01 00 00"),
    "pingreq": h("c0 00"),
    "pingresp": h("d0 00"),
    "disconnect": h("e0 00"),
    "disconnect-v5": h("e0 02 04 00"),
    "auth-v5": h("f0 00"),
}

def write(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    with open(f"corpus/{target}/{name}", "wb") as f:
        f.write(data)

for name, data in PACKETS.items():
    write("decode", name, data)
    write("roundtrip", name, data)

def feed(data):
    """Commands that feed `data` to the decoder, at most 160 bytes a time."""
    out = b""
    while data:
        chunk, data = data[:160], data[160:]
        out += bytes([len(chunk) - 1]) + chunk
    return out

P = PACKETS
sessions = {
    "server-v311": b"\x00" + feed(P["connect-v311"] + P["publish-qos1"] + P["subscribe"]),
    "server-v5": b"\x00" + feed(P["connect-v5"] + P["publish-qos2-v5"] + P["publish-alias-v5"]),
    "client-v5": b"\x80" + feed(P["connack-v5"] + P["publish-qos1"]),
    "client-v311": b"\x82" + feed(P["connack"] + P["pubrec"] + P["publish-qos0"]),
}
tail = h("d0") + feed(P["publish-qos1"] + P["pubrel"] + P["pingreq"]) + h("c0 c0 b1 b2 a3 a9 e0")
for name, data in sessions.items():
    write("flow", name, data + tail)
