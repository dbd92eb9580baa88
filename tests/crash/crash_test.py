#!/usr/bin/env python3
"""Crash test: Pigeon never loses a message it has acknowledged.

The program starts `pigeon broker` on a fresh data directory, connects
paho-mqtt clients with persistent sessions (MQTT 3.1.1 clean_session=0, or
5.0 clean_start=0 with a session expiry of an hour), subscribes once, then
publishes numbered messages at QoS 1 and QoS 2 (and retained messages at
QoS 1) while it kills the broker with SIGKILL at random moments and restarts
it on the same port and data directory. The clients reconnect by themselves
and are never told to subscribe again.

A passing run proves, for every kill:

- every QoS 1 message the broker acknowledged (PUBACK) reached the QoS 1
  subscriber at least once;
- every QoS 2 message the broker acknowledged (PUBCOMP) reached the QoS 2
  subscriber exactly once, and no QoS 2 message arrived twice;
- every client got its session back (session present = 1) on each
  reconnection, so the subscriptions made once at the start survived;
- the broker refused no publish (no failure reason code in a v5 PUBACK or
  PUBCOMP);
- after a last kill and restart, a new clean client subscribing to
  `crash/retained/#` gets, for each retained topic the broker acknowledged,
  the last acknowledged value or a later one.

With `--cycles 0` the broker is never killed (nor restarted before the
retained check): that run checks the checker.

Exit status: 0 when no violation, 1 with violations (listed in the report
on stdout), 2 when the harness itself could not run. One line per cycle
goes to stderr.
"""
import argparse
import collections
import ctypes
import os
import queue
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RETAINED_TOPICS = 8
RECONNECT_TIMEOUT = 10.0
RETAINED_TIMEOUT = 5.0
LISTED_NUMBERS = 20
# How far a publisher may run ahead of the highest number its subscriber has
# received: well below the broker's queue per session (limits.
# max_queued_messages, 1000 by default), which this test must not overflow.
MAX_AHEAD = 500
# A v5 PUBCOMP "Packet identifier not found" answers a PUBREL resent after a
# reconnection when the broker had completed the exchange but its PUBCOMP was
# lost with the connection. The broker accepted the message with its PUBREC,
# so it counts as acknowledged; had the broker forgotten it, the subscriber
# will not get it and the check reports it lost.
PACKET_ID_NOT_FOUND = 0x92
PR_SET_PDEATHSIG = 1
PRCTL = ctypes.CDLL(None, use_errno=True).prctl


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="broker kills (default 20)")
    parser.add_argument("--protocol", choices=["311", "5"], default="311")
    parser.add_argument("--broker-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for `pigeon broker` (repeatable; write "
                        "--broker-arg=--durability --broker-arg=sync for options)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--window", type=int, default=32,
                        help="unacknowledged messages each publisher may have in flight")
    parser.add_argument("--drain-timeout", type=float, default=30.0,
                        help="seconds to wait for deliveries at the end")
    return parser.parse_args()


def default_pigeon_bin():
    release = os.path.join(ROOT, "target", "release", "pigeon")
    return release if os.path.exists(release) else os.path.join(ROOT, "target", "debug", "pigeon")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """Run in the broker's process before exec: the kernel kills the broker
    when the thread that started it (our main thread) ends, so no broker
    outlives a harness that was itself killed (as by a test timeout)."""
    PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def log(line):
    print(line, file=sys.stderr, flush=True)


class Broker:
    """`pigeon broker` as our child process, on one port and one data dir."""

    def __init__(self, binary, extra_args, workdir, data_dir=None):
        if not os.path.exists(binary):
            raise RuntimeError(f"{binary} not found: build it (cargo build --release) "
                               "or set PIGEON_BIN")
        self.port = free_port()
        self.data_dir = data_dir or os.path.join(workdir, "data")
        self.log_path = os.path.join(workdir, "broker.log")
        self.command = [binary, "broker", "-p", str(self.port), "--data-dir", self.data_dir,
                        *extra_args]
        self.proc = None

    def start(self):
        with open(self.log_path, "a") as log_file:
            self.proc = subprocess.Popen(self.command, stdout=log_file, stderr=subprocess.STDOUT,
                                         preexec_fn=die_with_parent)
        self._wait_until_listening()

    def _wait_until_listening(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}; see its log:\n"
                                   + self.log_tail())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"broker did not listen on {self.port} within {timeout} s")

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines=20):
        with open(self.log_path) as f:
            return "".join(f.readlines()[-lines:])


class PahoClient(mqtt.Client):
    """paho's client with one defect worked around. paho 2.2.0 re-runs
    _messages_reconnect_reset_out on every reconnection attempt. The first
    run rightly marks a QoS 2 message awaiting PUBCOMP "resend PUBREL"; a
    second run (after an attempt that failed because the broker was still
    down) turns it into "resend PUBLISH", with DUP=0. The broker has already
    released that packet id, takes the PUBLISH for a new message and
    delivers it again: a duplicate that is paho's, not the broker's (the
    sender "MUST NOT re-send the PUBLISH once it has sent the corresponding
    PUBREL", MQTT-4.3.3-1 in 3.1.1, MQTT-4.3.3-6 in 5.0). This keeps the
    PUBREL owed."""

    def _messages_reconnect_reset_out(self):
        with self._out_message_mutex:
            owed_pubrel = [m for m in self._out_messages.values()
                           if m.state == mqtt.mqtt_ms_resend_pubrel]
            super()._messages_reconnect_reset_out()
            for message in owed_pubrel:
                message.state = mqtt.mqtt_ms_resend_pubrel


class Client:
    """A paho client that reconnects by itself, counting its connections and
    the reconnections on which the broker had forgotten its session."""

    def __init__(self, name, protocol, port, persistent=True):
        self.name = name
        self.connects = 0
        self.sessions_lost = 0
        self._changed = threading.Condition()
        kwargs = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                      client_id=f"crash-{name}", protocol=protocol)
        if protocol != mqtt.MQTTv5:
            kwargs["clean_session"] = not persistent
        self.paho = PahoClient(**kwargs)
        self.paho.on_connect = self._on_connect
        self.paho.reconnect_delay_set(min_delay=0.05, max_delay=0.5)
        self._connect_args = dict(host="127.0.0.1", port=port, keepalive=30)
        if protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600 if persistent else 0
            self._connect_args.update(clean_start=not persistent, properties=props)

    def connect(self):
        """Connects in the background; paho's loop thread reconnects after
        every loss of the connection."""
        self.paho.connect_async(**self._connect_args)
        self.paho.loop_start()

    def _on_connect(self, _client, _userdata, flags, reason_code, _properties):
        if reason_code.is_failure:
            return
        with self._changed:
            if self.connects and not flags.session_present:
                self.sessions_lost += 1
            self.connects += 1
            self._changed.notify_all()

    def wait_for_connects(self, count, timeout=RECONNECT_TIMEOUT):
        with self._changed:
            return self._changed.wait_for(lambda: self.connects >= count, timeout)

    def close(self):
        self.paho.disconnect()
        self.paho.loop_stop()


class Subscriber:
    """Counts every message number its client receives."""

    def __init__(self, client):
        self.client = client
        self.received = collections.Counter()
        self.highest = 0
        self._lock = threading.Lock()
        self._granted = queue.Queue()
        client.paho.on_message = self._on_message
        client.paho.on_subscribe = lambda _c, _u, _mid, codes, _p: self._granted.put(codes)

    def subscribe(self, topic_filter, qos):
        self.client.paho.subscribe(topic_filter, qos)
        try:
            codes = self._granted.get(timeout=RECONNECT_TIMEOUT)
        except queue.Empty:
            raise RuntimeError(f"{self.client.name}: no SUBACK for {topic_filter}") from None
        if [code.value for code in codes] != [qos]:
            raise RuntimeError(f"{self.client.name}: {topic_filter} answered with {codes}")

    def _on_message(self, _client, _userdata, msg):
        with self._lock:
            number = int(msg.payload)
            self.received[number] += 1
            self.highest = max(self.highest, number)

    def snapshot(self):
        with self._lock:
            return collections.Counter(self.received)


class Publisher:
    """Publishes numbered messages (1, 2, …) from a thread, keeping at most
    `window` unacknowledged and, given the subscriber that reads them (the
    reader), at most MAX_AHEAD beyond the highest number it has received.

    A number is acknowledged when paho's on_publish fires for its packet id
    (PUBACK at QoS 1, PUBCOMP at QoS 2) with a success reason code (or
    PACKET_ID_NOT_FOUND); with another failure code it is rejected."""

    def __init__(self, client, qos, topic_of, window, retain=False, pause=0.0, reader=None):
        self.client = client
        self.qos = qos
        self.topic_of = topic_of
        self.window = window
        self.retain = retain
        self.pause = pause
        self.reader = reader
        self.published = 0
        self.acked = set()
        self.rejected = {}
        self._pending = {}
        self._early_acks = {}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        client.paho.max_inflight_messages_set(window)
        client.paho.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, name=f"publish-{client.name}")

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self):
        while self._wait_for_room():
            number = self.published + 1
            info = self.client.paho.publish(self.topic_of(number), str(number).encode(),
                                            qos=self.qos, retain=self.retain)
            self.published = number
            self._sent(info.mid, number)
            self._stop.wait(self.pause)

    def _wait_for_room(self):
        with self._changed:
            while not (self._stop.is_set() or self._has_room()):
                self._changed.wait(0.01)
        return not self._stop.is_set()

    def _has_room(self):
        if len(self._pending) >= self.window:
            return False
        return self.reader is None or self.published - self.reader.highest < MAX_AHEAD

    # on_publish can fire before publish() has returned the packet id to
    # _run, so each side looks for the other's record under one lock.
    def _sent(self, mid, number):
        with self._changed:
            if mid in self._early_acks:
                self._settle(number, self._early_acks.pop(mid))
            else:
                self._pending[mid] = number

    def _on_publish(self, _client, _userdata, mid, reason_code, _properties):
        with self._changed:
            if mid in self._pending:
                self._settle(self._pending.pop(mid), reason_code)
            else:
                self._early_acks[mid] = reason_code

    def _settle(self, number, reason_code):
        if reason_code.is_failure and reason_code.value != PACKET_ID_NOT_FOUND:
            self.rejected[number] = str(reason_code)
        else:
            self.acked.add(number)
        self._changed.notify_all()

    def unacknowledged(self):
        with self._changed:
            return len(self._pending)

    def acked_numbers(self):
        with self._changed:
            return set(self.acked)


def retained_topic(number):
    return f"crash/retained/{number % RETAINED_TOPICS}"


def last_acked_retained(publisher):
    """The highest acknowledged value of each retained topic."""
    last = {}
    for number in sorted(publisher.acked_numbers()):
        last[retained_topic(number)] = number
    return last


class Rig:
    """The broker and every client of one run."""

    def __init__(self, broker, protocol, window):
        self.broker = broker
        self.clients = [Client(name, protocol, broker.port)
                        for name in ("sub-q1", "sub-q2", "pub-q1", "pub-q2", "pub-retained")]
        sub_q1, sub_q2, pub_q1, pub_q2, pub_retained = self.clients
        self.sub_q1 = Subscriber(sub_q1)
        self.sub_q2 = Subscriber(sub_q2)
        self.pub_q1 = Publisher(pub_q1, 1, lambda _n: "crash/q1/x", window, reader=self.sub_q1)
        self.pub_q2 = Publisher(pub_q2, 2, lambda _n: "crash/q2/x", window, reader=self.sub_q2)
        self.pub_retained = Publisher(pub_retained, 1, retained_topic, 4, retain=True, pause=0.05)
        self.publishers = [self.pub_q1, self.pub_q2, self.pub_retained]
        self.unreconnected = []

    def start(self):
        """Waits for every client, subscribes (once for the whole run) and
        starts publishing."""
        for client in self.clients:
            client.connect()
        for client in self.clients:
            if not client.wait_for_connects(1):
                raise RuntimeError(f"{client.name} could not connect")
        self.sub_q1.subscribe("crash/q1/#", 1)
        self.sub_q2.subscribe("crash/q2/#", 2)
        for publisher in self.publishers:
            publisher.start()

    def restart_broker(self):
        """Kills the broker, starts it again and waits until every client is
        back (noting those that are not)."""
        counts = [client.connects for client in self.clients]
        self.broker.kill()
        self.broker.start()
        for client, count in zip(self.clients, counts):
            if not client.wait_for_connects(count + 1):
                self.unreconnected.append(client.name)

    def drained(self):
        if any(p.unacknowledged() for p in self.publishers):
            return False
        q1, q2 = self.sub_q1.snapshot(), self.sub_q2.snapshot()
        return (all(q1[n] for n in self.pub_q1.acked_numbers())
                and all(q2[n] for n in self.pub_q2.acked_numbers()))

    def wait_for_drain(self, timeout):
        deadline = time.monotonic() + timeout
        while not self.drained() and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self):
        for publisher in self.publishers:
            publisher.stop()
        for client in self.clients:
            client.close()


def read_retained(port, protocol, expected):
    """The retained values a new clean client gets on `crash/retained/#`,
    waiting until each expected topic has at least its expected value."""
    values = {}
    satisfied = threading.Condition()

    def on_message(_client, _userdata, msg):
        with satisfied:
            values[msg.topic] = int(msg.payload)
            satisfied.notify_all()

    client = Client("retained-reader", protocol, port, persistent=False)
    try:
        client.connect()
        if not client.wait_for_connects(1):
            raise RuntimeError("retained-reader could not connect")
        client.paho.on_message = on_message
        client.paho.subscribe("crash/retained/#", 1)
        with satisfied:
            satisfied.wait_for(lambda: all(values.get(t, -1) >= v for t, v in expected.items()),
                               RETAINED_TIMEOUT)
            return dict(values)
    finally:
        client.close()


def number_ranges(numbers):
    """`[1, 2, 3, 7]` as `1-3, 7`, listing at most LISTED_NUMBERS ranges."""
    ranges = []
    for n in sorted(numbers):
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    shown = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges[:LISTED_NUMBERS])
    hidden = len(ranges) - LISTED_NUMBERS
    return shown + (f", … ({hidden} more ranges)" if hidden > 0 else "")


def counted(counter):
    """`{5: 2, 9: 3}` as `5 (x2), 9 (x3)`, listing at most LISTED_NUMBERS."""
    items = sorted(counter.items())
    shown = ", ".join(f"{n} (x{c})" for n, c in items[:LISTED_NUMBERS])
    hidden = len(items) - LISTED_NUMBERS
    return shown + (f", … ({hidden} more)" if hidden > 0 else "")


def delivery_violations(rig):
    q1_acked, q2_acked = rig.pub_q1.acked_numbers(), rig.pub_q2.acked_numbers()
    q1, q2 = rig.sub_q1.snapshot(), rig.sub_q2.snapshot()
    violations = []
    lost_q1 = q1_acked - set(q1)
    if lost_q1:
        violations.append(f"QoS 1: {len(lost_q1)} acknowledged messages never delivered: "
                          + number_ranges(lost_q1))
    lost_q2 = q2_acked - set(q2)
    if lost_q2:
        violations.append(f"QoS 2: {len(lost_q2)} acknowledged messages never delivered: "
                          + number_ranges(lost_q2))
    twice = {n: c for n, c in q2.items() if c > 1 and n in q2_acked}
    if twice:
        violations.append(f"QoS 2: {len(twice)} acknowledged messages delivered more than once: "
                          + counted(twice))
    twice_unacked = {n: c for n, c in q2.items() if c > 1 and n not in q2_acked}
    if twice_unacked:
        violations.append(f"QoS 2: {len(twice_unacked)} unacknowledged messages delivered "
                          "more than once: " + counted(twice_unacked))
    return violations


def client_violations(rig):
    violations = []
    for publisher in rig.publishers:
        if publisher.rejected:
            codes = collections.Counter(publisher.rejected.values())
            violations.append(f"{publisher.client.name}: broker refused {len(publisher.rejected)} "
                              f"publishes ({dict(codes)}): " + number_ranges(publisher.rejected))
    for client in rig.clients:
        if client.sessions_lost:
            violations.append(f"{client.name}: session lost (session present = 0) on "
                              f"{client.sessions_lost} of {client.connects - 1} reconnections")
    for name, times in collections.Counter(rig.unreconnected).items():
        violations.append(f"{name}: not reconnected within {RECONNECT_TIMEOUT:g} s "
                          f"after {times} restarts")
    return violations


def retained_violations(expected, received):
    missing = [f"{t} (last acknowledged {v})" for t, v in sorted(expected.items())
               if t not in received]
    stale = [f"{t} = {received[t]} (last acknowledged {v})" for t, v in sorted(expected.items())
             if t in received and received[t] < v]
    violations = []
    if missing:
        violations.append(f"retained: {len(missing)} acknowledged topics missing: "
                          + ", ".join(missing))
    if stale:
        violations.append(f"retained: {len(stale)} topics older than acknowledged: "
                          + ", ".join(stale))
    return violations


def report(args, rig, expected_retained, received_retained, violations):
    protocol = {"311": "MQTT 3.1.1", "5": "MQTT 5.0"}[args.protocol]
    broker_args = " ".join(args.broker_arg) or "(none)"
    print(f"Pigeon crash test: {args.cycles} kill cycles, {protocol}, seed {args.seed}, "
          f"broker args {broker_args}")
    print(f"{'':10}{'published':>10}{'acked':>10}{'rejected':>10}{'delivered':>11}{'distinct':>10}")
    for label, publisher, subscriber in (("QoS 1", rig.pub_q1, rig.sub_q1),
                                         ("QoS 2", rig.pub_q2, rig.sub_q2)):
        received = subscriber.snapshot()
        print(f"{label:10}{publisher.published:>10}{len(publisher.acked_numbers()):>10}"
              f"{len(publisher.rejected):>10}{sum(received.values()):>11}{len(received):>10}")
    retained = rig.pub_retained
    print(f"{'retained':10}{retained.published:>10}{len(retained.acked_numbers()):>10}"
          f"{len(retained.rejected):>10}   read back {len(received_retained)} of "
          f"{len(expected_retained)} acknowledged topics")
    reconnects = sum(client.connects - 1 for client in rig.clients)
    print(f"client reconnections: {reconnects}")
    if violations:
        print(f"VIOLATIONS ({len(violations)}):")
        for violation in violations:
            print(f"  - {violation}")
        print("RESULT: FAIL")
    else:
        print("RESULT: PASS")


def run_cycles(rig, cycles, rng):
    """Traffic for a random moment, a kill and a restart, `cycles` times;
    then a last moment of traffic."""
    for cycle in range(1, cycles + 1):
        moment = rng.uniform(0.2, 1.5)
        time.sleep(moment)
        rig.restart_broker()
        log(f"cycle {cycle}/{cycles}: killed after {moment:.2f} s of traffic; acked so far "
            f"q1 {len(rig.pub_q1.acked_numbers())}, q2 {len(rig.pub_q2.acked_numbers())}, "
            f"retained {len(rig.pub_retained.acked_numbers())}")
    time.sleep(rng.uniform(0.2, 1.5))


def run(args, workdir):
    protocol = mqtt.MQTTv5 if args.protocol == "5" else mqtt.MQTTv311
    broker = Broker(os.environ.get("PIGEON_BIN", default_pigeon_bin()), args.broker_arg, workdir)
    rig = Rig(broker, protocol, args.window)
    try:
        broker.start()
        rig.start()
        run_cycles(rig, args.cycles, random.Random(args.seed))
        for publisher in rig.publishers:
            publisher.stop()
        log("publishing stopped; waiting for deliveries")
        rig.wait_for_drain(args.drain_timeout)
        violations = delivery_violations(rig)
        if args.cycles:
            rig.restart_broker()
        expected = last_acked_retained(rig.pub_retained)
        received = read_retained(broker.port, protocol, expected)
        violations += client_violations(rig) + retained_violations(expected, received)
        report(args, rig, expected, received, violations)
        return 1 if violations else 0
    finally:
        try:
            rig.close()
        finally:
            broker.stop()


def main():
    args = parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(2**32)
    workdir = tempfile.mkdtemp(prefix="pigeon-crash-")
    try:
        return run(args, workdir)
    except RuntimeError as err:
        print(f"crash test could not run: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
