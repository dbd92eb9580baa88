"""Runs the crash test (crash_test.py) for 20 kill cycles in MQTT 3.1.1 and
in MQTT 5.0, failing with its report. It needs the durable store: against a
broker that keeps its state in memory it fails, as it should."""
import os
import subprocess
import sys

import pytest

CRASH_TEST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_test.py")


@pytest.mark.parametrize("protocol", ["311", "5"])
def test_no_acknowledged_message_is_lost_when_the_broker_is_killed(protocol):
    result = subprocess.run(
        [sys.executable, CRASH_TEST, "--cycles", "20", "--protocol", protocol],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
