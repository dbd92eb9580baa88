//! Bad input on the WebSocket and TLS listeners of `pigeon broker`
//! (catalogue §4.10 and §4.11 of shared/reference/reliability.md), sent
//! as raw bytes: each bad connection is closed, nothing is allocated for a
//! frame that claims to be huge, and a well-behaved client on the same
//! listener carries on. Also what must work: packets split over frames
//! and packed into one (W2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// A client frame: FIN and opcode in `first`, masked unless `unmasked`.
fn frame(first: u8, payload: &[u8], unmasked: bool) -> Vec<u8> {
    let mut f = vec![first];
    let mask_bit = if unmasked { 0 } else { 0x80 };
    match payload.len() {
        n if n < 126 => f.push(mask_bit | n as u8),
        n => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    if unmasked {
        f.extend_from_slice(payload);
        return f;
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

fn binary(payload: &[u8]) -> Vec<u8> {
    frame(0x82, payload, false)
}

/// Opens a WebSocket to `port` with `extra` request headers; returns the
/// stream after a 101, or the status line.
fn ws_open(port: u16, extra: &str) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let request = format!(
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: mqtt\r\n{extra}\r\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return Err(String::from_utf8_lossy(&head).into()),
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    match head.starts_with("HTTP/1.1 101") {
        true => Ok(s),
        false => Err(head.lines().next().unwrap_or("").to_owned()),
    }
}

/// Reads frames until the server closes: the binary payloads seen, and
/// whether it closed within 5 s.
fn until_closed(s: &mut TcpStream) -> (Vec<u8>, bool) {
    let started = Instant::now();
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (data, started.elapsed() < Duration::from_secs(5)),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (data, true),
            Err(_) => return (data, false),
        }
    }
}

/// Reads exactly `n` bytes of server frames and returns the MQTT bytes in
/// them (server frames are unmasked binary frames of under 126 bytes here).
fn read_mqtt(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < n {
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x82, "a binary frame");
        let mut payload = vec![0u8; usize::from(head[1] & 0x7F)];
        s.read_exact(&mut payload).unwrap();
        out.extend(payload);
    }
    out
}

fn broker(dir: &Path) -> (Service, u16, u16) {
    let _ = make_pki(dir);
    let (mqtt, ws, tls) = (free_port(), free_port(), free_port());
    let d = dir.display();
    let config = format!(
        r#"listen = "127.0.0.1:{mqtt}"
durability = "memory"
data_dir = "{d}/data"

[limits]
handshake_timeout_ms = 1000

[[listeners]]
address = "127.0.0.1:{ws}"
protocol = "websocket"
allowed_origins = ["https://good.example"]

[[listeners]]
address = "127.0.0.1:{tls}"
certfile = "{d}/server.pem"
keyfile = "{d}/server.key"
"#
    );
    let service = pigeon_with_config(dir, &config, &[mqtt, ws, tls]);
    (service, ws, tls)
}

#[test]
fn bad_websocket_frames_close_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, ws, _) = broker(dir.path());
    // A good client, connected first and checked last.
    let mut good = ws_open(ws, "Origin: https://good.example\r\n").unwrap();
    good.write_all(&binary(&connect_bytes("good"))).unwrap();
    assert_eq!(read_mqtt(&mut good, 4), [0x20, 2, 0, 0]);

    // MQTT-6.0.0-2 (catalogue W2): one packet over three frames, then
    // three packets (PINGREQ) in one frame.
    let mut split = ws_open(ws, "").unwrap();
    let connect = connect_bytes("split");
    split.write_all(&frame(0x02, &connect[..3], false)).unwrap();
    split
        .write_all(&frame(0x00, &connect[3..9], false))
        .unwrap();
    split.write_all(&frame(0x80, &connect[9..], false)).unwrap();
    assert_eq!(read_mqtt(&mut split, 4), [0x20, 2, 0, 0]);
    split
        .write_all(&binary(&[0xC0, 0, 0xC0, 0, 0xC0, 0]))
        .unwrap();
    assert_eq!(read_mqtt(&mut split, 6), [0xD0, 0, 0xD0, 0, 0xD0, 0]);

    let mut huge_length = vec![0x82, 0x80 | 127];
    huge_length.extend_from_slice(&(u64::MAX >> 1 | 1 << 63).to_be_bytes());
    huge_length.extend_from_slice(&[1, 2, 3, 4]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // MQTT-6.0.0-1 (catalogue W1).
        ("a text frame", frame(0x81, &connect_bytes("t"), false)),
        // Catalogue W4 (RFC 6455 §5.1).
        ("an unmasked frame", frame(0x82, &connect_bytes("u"), true)),
        // Catalogue W5: no allocation for it, the connection just ends.
        ("a 64-bit length with its top bit set", huge_length),
        // Catalogue W6 (RFC 6455 §5.5).
        ("a ping of 126 bytes", frame(0x89, &[0u8; 126], false)),
        ("a fragmented ping", frame(0x09, b"x", false)),
        ("a continuation with no start", frame(0x80, b"x", false)),
        // Catalogue W7.
        ("RSV bits without an extension", frame(0xC2, b"x", false)),
        ("an unknown opcode", frame(0x83, b"x", false)),
    ];
    for (what, bytes) in cases {
        let mut bad = ws_open(ws, "").unwrap();
        bad.write_all(&bytes).unwrap();
        let (_, closed) = until_closed(&mut bad);
        assert!(closed, "{what}: the connection stayed open");
    }

    // Catalogue W8: a page from another Origin gets 403.
    let refused = ws_open(ws, "Origin: https://evil.example\r\n").unwrap_err();
    assert!(refused.contains("403"), "{refused}");
    // Catalogue W9: 100 KiB of headers is refused (or closed), not stored.
    let padding = format!("X-Pad: {}\r\n", "a".repeat(1000)).repeat(100);
    assert!(
        ws_open(ws, &padding).is_err(),
        "100 KiB of headers accepted"
    );

    // The good client never noticed.
    good.write_all(&binary(&[0xC0, 0])).unwrap();
    assert_eq!(read_mqtt(&mut good, 2), [0xD0, 0]);
}

#[test]
fn plain_mqtt_on_the_tls_port_is_closed_at_once() {
    // Catalogue TL1.
    let dir = tempfile::tempdir().unwrap();
    let (_broker, _, tls) = broker(dir.path());
    let mut s = TcpStream::connect(("127.0.0.1", tls)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&connect_bytes("plain")).unwrap();
    let started = Instant::now();
    let (_, closed) = until_closed(&mut s);
    assert!(closed, "still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// CPU time the process has used (user + system), from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

#[test]
fn silent_connections_are_closed_after_the_handshake_timeout() {
    // Catalogue TL2: TCP connections that never send a ClientHello (or a
    // WebSocket upgrade) are closed after limits.handshake_timeout_ms
    // (1 s here), and waiting for them costs no CPU.
    let dir = tempfile::tempdir().unwrap();
    let (broker, ws, tls) = broker(dir.path());
    let before = cpu_time(broker.child.id());
    let started = Instant::now();
    let mut silent: Vec<TcpStream> = (0..200)
        .map(|i| {
            let s = TcpStream::connect(("127.0.0.1", if i % 2 == 0 { tls } else { ws })).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    for s in &mut silent {
        let (_, closed) = until_closed(s);
        assert!(closed, "a silent connection stayed open");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "closed before the timeout: {took:?}"
    );
    let used = cpu_time(broker.child.id()) - before;
    assert!(
        used < Duration::from_millis(500),
        "the broker used {used:?} of CPU"
    );
}
