//! `pigeon broker` listener security beyond passwords: the user name taken
//! from the client certificate and mapped through a listener's own ACL
//! (Debian's mosquitto_pub / mosquitto_sub with --cert), expired and
//! nameless certificates refused, the PROXY protocol (v1, v2 and the bad
//! headers of catalogue TL7/TL8), per-source connection rates, a
//! listener's connection cap and its own password file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

mod common;
use common::*;

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("broker.log")).unwrap()
}

/// A client certificate signed by the test CA, with `cn` as Common Name
/// (none if `None`), expired or not.
fn client_cert(dir: &Path, issuer: &Ca, file: &str, cn: Option<&str>, expired: bool) {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
}

#[test]
fn certificate_identities_are_user_names_for_the_listeners_acl() {
    if !have("mosquitto_pub") || !have("mosquitto_sub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = make_pki(d);
    client_cert(d, &ca, "alice", Some("alice"), false);
    client_cert(d, &ca, "mallory", Some("mallory"), false);
    client_cert(d, &ca, "expired", Some("alice"), true);
    client_cert(d, &ca, "nameless", None, false);
    std::fs::write(d.join("acl"), "user alice\ntopic readwrite alice/#\n").unwrap();
    let (plain, tls) = (free_port(), free_port());
    let p = d.display();
    let config = format!(
        r#"listen = "127.0.0.1:{plain}"
durability = "memory"
data_dir = "{p}/data"

[[listeners]]
address = "127.0.0.1:{tls}"
certfile = "{p}/server.pem"
keyfile = "{p}/server.key"
cafile = "{p}/ca.pem"
require_certificate = true
use_identity_as_username = true
acl_file = "{p}/acl"
"#
    );
    let _broker = pigeon_with_config(d, &config, &[plain, tls]);
    // The plain listener has no ACL: it watches everything.
    let plain = plain.to_string();
    let watcher = background(
        "/usr/bin/mosquitto_sub",
        &["-p", &plain, "-t", "#", "-v", "-W", "5"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let tls = tls.to_string();
    let ca = format!("{p}/ca.pem");
    let publish = |who: &str, topic: &str, user: Option<&str>| {
        let (cert, key) = (format!("{p}/{who}.pem"), format!("{p}/{who}.key"));
        let mut args = vec![
            "-h",
            "localhost",
            "-p",
            &tls,
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-t",
            topic,
            "-m",
            who,
            "-q",
            "1",
            "-V",
            "5",
        ];
        if let Some(user) = user {
            args.extend(["-u", user]);
        }
        run("/usr/bin/mosquitto_pub", &args, b"")
    };
    // alice's certificate may write alice/#; a user name in CONNECT does
    // not change who she is.
    let out = publish("alice", "alice/1", Some("mallory"));
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // mallory's may not (PUBACK 0x87: the message goes nowhere).
    publish("mallory", "alice/2", Some("alice"));
    // Catalogue TL3: an expired certificate is refused in the handshake.
    let out = publish("expired", "alice/3", None);
    assert_ne!(code(&out), 0, "an expired certificate was accepted");
    // Catalogue TL6: a certificate without a name to use is refused.
    let out = publish("nameless", "alice/4", None);
    assert_ne!(code(&out), 0, "a certificate without a name was accepted");
    let out = finish(watcher);
    assert_eq!(stdout(&out), "alice/1 alice\n");
    let log = log(d);
    assert!(
        log.contains("ACL denies write to 'alice/2' for user 'mallory'"),
        "{log}"
    );
    assert!(log.contains("no Common Name"), "{log}");
}

/// Sends `header` and a CONNECT on a new connection to `port`: whether a
/// CONNACK accepting it came back (false if the broker closed instead).
fn connect_through(port: u16, header: &[u8], id: &str) -> (bool, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = header.to_vec();
    out.extend(connect_bytes(id));
    // The broker may close before reading everything: that is an answer.
    let _ = s.write_all(&out);
    let mut reply = [0u8; 4];
    let accepted = s.read_exact(&mut reply).is_ok() && reply == [0x20, 2, 0, 0];
    (accepted, s)
}

fn proxy_v2(source: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // TCP over IPv4
    let len = 12 + tlvs.len() as u16;
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&source);
    h.extend_from_slice(&[127, 0, 0, 1]);
    h.extend_from_slice(&port.to_be_bytes());
    h.extend_from_slice(&1883u16.to_be_bytes());
    h.extend_from_slice(tlvs);
    h
}

#[test]
fn proxy_protocol_gives_the_client_address_and_bad_headers_close() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (plain, proxied) = (free_port(), free_port());
    let config = format!(
        r#"listen = "127.0.0.1:{plain}"
durability = "memory"
data_dir = "{}/data"

[[listeners]]
address = "127.0.0.1:{proxied}"
proxy_protocol = true
connection_rate_per_source = 1
"#,
        d.display()
    );
    let _broker = pigeon_with_config(d, &config, &[plain, proxied]);
    // v1 and v2 from different sources: each the first from its address.
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 1883\r\n";
    assert!(connect_through(proxied, v1, "v1").0);
    let v2 = proxy_v2([198, 51, 100, 9], 4444, &[0x04, 0, 2, b'o', b'k']);
    assert!(connect_through(proxied, &v2, "v2").0);
    // The rate per source counts the address the proxy gave: five from
    // one source in quick succession (one second, or two if a second
    // boundary falls between them) get one or two through.
    let accepted = (0..5)
        .filter(|i| {
            let header = format!("PROXY TCP4 192.0.2.1 127.0.0.1 {} 1883\r\n", 1000 + i);
            connect_through(proxied, header.as_bytes(), &format!("same{i}")).0
        })
        .count();
    assert!((1..=2).contains(&accepted), "{accepted} of 5 accepted");
    // Catalogue TL7: bad headers close the connection.
    let bad: [(&str, Vec<u8>); 5] = [
        (
            "a TLV running past the block",
            proxy_v2([192, 0, 2, 10], 1, &[0x04, 0, 200, b'x']),
        ),
        ("a v1 line over 107 bytes", {
            let mut h = b"PROXY TCP4 ".to_vec();
            h.extend([b'1'; 120]);
            h
        }),
        ("v1 garbage", b"PROXY TCP4 hello\r\n".to_vec()),
        ("version 3", {
            let mut h = proxy_v2([192, 0, 2, 12], 1, &[]);
            h[12] = 0x31;
            h
        }),
        ("no header at all", Vec::new()),
    ];
    for (what, header) in bad {
        let (accepted, _) = connect_through(proxied, &header, "bad");
        assert!(!accepted, "{what} was accepted");
    }
    // Catalogue TL8: a PROXY header where none is expected is a bad first
    // packet.
    assert!(!connect_through(plain, v1, "stray").0);
    // The listener still serves.
    assert!(connect_through(proxied, b"PROXY TCP4 192.0.2.99 127.0.0.1 9 1883\r\n", "ok").0);
}

#[test]
fn a_listener_caps_its_connections_and_may_have_its_own_passwords() {
    if !have("mosquitto_passwd") || !have("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (global, own) = (d.join("global-passwords"), d.join("own-passwords"));
    for (file, user) in [(&global, "gina"), (&own, "olga")] {
        let f = file.to_str().unwrap();
        let out = run(
            "/usr/bin/mosquitto_passwd",
            &["-c", "-b", f, user, "pw"],
            b"",
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let (plain, capped) = (free_port(), free_port());
    let config = format!(
        r#"listen = "127.0.0.1:{plain}"
durability = "memory"
data_dir = "{p}/data"
password_file = "{g}"

[[listeners]]
address = "127.0.0.1:{capped}"
max_connections = 2
password_file = "{o}"
"#,
        p = d.display(),
        g = global.display(),
        o = own.display(),
    );
    let _broker = pigeon_with_config(d, &config, &[plain, capped]);
    let publish = |port: u16, user: &str| {
        let port = port.to_string();
        let args = ["-p", &port, "-u", user, "-P", "pw", "-t", "t", "-m", "x"];
        code(&run("/usr/bin/mosquitto_pub", &args, b""))
    };
    assert_eq!(publish(plain, "gina"), 0);
    assert_eq!(publish(plain, "olga"), 4, "olga is not in the global file");
    assert_eq!(publish(capped, "olga"), 0);
    assert_eq!(
        publish(capped, "gina"),
        4,
        "the listener's own file replaces it"
    );
    // Two connections fill the capped listener; a third is closed at once.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", capped)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let (accepted, _) = connect_through(capped, &[], "third");
    assert!(!accepted, "a third connection was served");
    // The main listener is not affected; closing one makes room again.
    assert!(connect_through(plain, &[], "main").0);
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut olga = connect_bytes("olga");
    olga[1] += 10;
    olga[9] = 0xC2; // user name and password flags
    olga.extend_from_slice(&[0, 4, b'o', b'l', b'g', b'a', 0, 2, b'p', b'w']);
    let mut s = TcpStream::connect(("127.0.0.1", capped)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&olga).unwrap();
    let mut reply = [0u8; 4];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [0x20, 2, 0, 0]);
}
