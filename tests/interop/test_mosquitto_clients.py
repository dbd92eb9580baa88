"""Debian's mosquitto_pub and mosquitto_sub against Pigeon, as a mosquitto
user would type them."""
import subprocess
import time

import pytest


def run(*args, timeout=10):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


def sub_process(port, *args):
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("version", ["311", "5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_pub_reaches_sub(broker, version, qos):
    # Retained, so the order in which the two start does not matter.
    pub = run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker), "-V", version,
              "-q", qos, "-r", "-t", "cli/t", "-m", f"hello {qos}")
    assert pub.returncode == 0, pub.stderr
    sub = run("mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker), "-V", version,
              "-q", qos, "-t", "cli/#", "-C", "1", "-W", "5", "-v")
    assert sub.returncode == 0, sub.stderr
    assert sub.stdout.strip() == f"cli/t hello {qos}"


@pytest.mark.parametrize("version", ["311", "5"])
def test_persistent_session_with_dash_c(broker, version):
    common = ["-h", "127.0.0.1", "-p", str(broker), "-V", version]
    # Create the session and its subscription, then go away.
    first = run("mosquitto_sub", *common, "-c", "-i", "cli-keeper", "-q", "1",
                "-t", "cli/jobs", "-W", "1", *(["-x", "600"] if version == "5" else []))
    assert first.returncode in (0, 27), first.stderr  # 27: timed out as asked
    pub = run("mosquitto_pub", *common, "-q", "1", "-t", "cli/jobs", "-m", "while away")
    assert pub.returncode == 0, pub.stderr
    again = run("mosquitto_sub", *common, "-c", "-i", "cli-keeper", "-q", "1",
                "-t", "cli/jobs", "-C", "1", "-W", "5", *(["-x", "600"] if version == "5" else []))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "while away"


def test_v5_properties_and_expiry_through_mosquitto_clients(broker):
    # MQTT-3.3.2-17 (user properties in order), MQTT-3.3.2-6 (the expiry
    # interval a subscriber sees is what is left): `mosquitto_pub -D` and
    # `mosquitto_sub -F`.
    common = ["-h", "127.0.0.1", "-p", str(broker), "-V", "5"]
    pub = run("mosquitto_pub", *common, "-q", "1", "-r", "-t", "v5/props", "-m", "x",
              "-D", "publish", "user-property", "k1", "v1",
              "-D", "publish", "user-property", "k2", "v2",
              "-D", "publish", "message-expiry-interval", "300")
    assert pub.returncode == 0, pub.stderr
    sub = run("mosquitto_sub", *common, "-t", "v5/#", "-C", "1", "-W", "5", "-F", "%t %P %E")
    assert sub.returncode == 0, sub.stderr
    topic, first, second, expiry = sub.stdout.split()
    assert (topic, first, second) == ("v5/props", "k1:v1", "k2:v2")
    assert 290 <= int(expiry) <= 300


def test_v5_shared_subscription_with_mosquitto_sub(broker):
    # §4.8.2: two `mosquitto_sub -t '$share/g/…'` members take turns.
    common = ["-h", "127.0.0.1", "-p", str(broker), "-V", "5"]
    members = [sub_process(broker, "-V", "5", "-q", "1", "-t", "$share/cli/jobs", "-C", "2", "-W", "10")
               for _ in range(2)]
    time.sleep(0.5)  # both subscribed before the first message
    for n in range(4):
        pub = run("mosquitto_pub", *common, "-q", "1", "-t", "jobs", "-m", f"job {n}")
        assert pub.returncode == 0, pub.stderr
    outs = [m.communicate(timeout=15)[0].split("\n") for m in members]
    got = sorted(line for out in outs for line in out if line)
    assert got == [f"job {n}" for n in range(4)]
    assert all(m.returncode == 0 for m in members), "each member got exactly its 2"
