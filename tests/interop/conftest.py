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


def stop(proc):
    """Stops a broker this file started, by its PID: SIGTERM, then SIGKILL."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        stop(proc)


def make_certificates(directory):
    """A CA and a server certificate for localhost and 127.0.0.1, made with
    the openssl command (PEM files in `directory`)."""
    d = str(directory)
    run = lambda *args: subprocess.run(args, cwd=d, check=True, capture_output=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=pigeon interop CA")
    run("openssl", "req", *ec, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return os.path.join(d, "ca.pem")


@pytest.fixture
def transports(tmp_path):
    """A Pigeon broker with MQTT over TLS, WebSocket and WebSocket over TLS
    listeners: a dict of their ports and the CA file that signed its
    certificate."""
    ca = make_certificates(tmp_path)
    ports = {name: free_port() for name in ("mqtt", "tls", "ws", "wss")}
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    config = tmp_path / "pigeon.toml"
    config.write_text(f"""listen = "127.0.0.1:{ports['mqtt']}"
data_dir = "{tmp_path / 'data'}"

[[listeners]]
address = "127.0.0.1:{ports['tls']}"
certfile = "{cert}"
keyfile = "{key}"

[[listeners]]
address = "127.0.0.1:{ports['ws']}"
protocol = "websocket"

[[listeners]]
address = "127.0.0.1:{ports['wss']}"
protocol = "websocket"
certfile = "{cert}"
keyfile = "{key}"
""")
    proc = subprocess.Popen([PIGEON, "broker", "-c", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for port in ports.values():
            wait_for_port(port, proc)
        yield dict(ports, ca=ca)
    finally:
        stop(proc)
