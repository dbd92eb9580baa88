"""Starts `pigeon broker` on a free loopback port for each test that asks
for it, and stops it by PID afterwards."""
import os
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIGEON = os.environ.get("PIGEON_BIN", os.path.join(ROOT, "target", "debug", "pigeon"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited early: {proc.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"broker did not listen on {port} within {timeout}s")


@pytest.fixture
def broker(tmp_path):
    """The port of a freshly started Pigeon broker (default durability,
    sync, with a data directory of its own)."""
    if not os.path.exists(PIGEON):
        pytest.fail(f"{PIGEON} not found: run 'cargo build -p pigeon' first")
    port = free_port()
    proc = subprocess.Popen(
        [PIGEON, "broker", "-p", str(port), "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
