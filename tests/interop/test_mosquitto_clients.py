"""Debian's mosquitto_pub and mosquitto_sub against Pigeon, as a mosquitto
user would type them."""
import subprocess

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
