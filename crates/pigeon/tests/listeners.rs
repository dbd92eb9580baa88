//! `pigeon broker` with `[[listeners]]`: MQTT over TLS, WebSocket and
//! WebSocket over TLS beside the plain listener, one broker for all of
//! them. Peers: Debian's mosquitto_pub / mosquitto_sub with --cafile,
//! --cert and --key, and pigeon-client over every transport. Certificates
//! are made here with rcgen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use pigeon_client::{AsyncClient, Event, Options, Protocol, QoS, TlsOptions};

mod common;
use common::*;

/// The payload of the next message (other events skipped), within 5 s.
async fn next_payload(events: &mut pigeon_client::Events) -> bytes::Bytes {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(Event::Message(m))) => return m.publish.payload,
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

struct Ports {
    mqtt: u16,
    tls: u16,
    mtls: u16,
    ws: u16,
    wss: u16,
}

/// `pigeon broker -c` with a plain, a TLS, a mutual-TLS, a WebSocket and
/// a WSS listener.
fn broker_with_listeners(dir: &Path) -> (Service, Ports) {
    make_pki(dir);
    let ports = Ports {
        mqtt: free_port(),
        tls: free_port(),
        mtls: free_port(),
        ws: free_port(),
        wss: free_port(),
    };
    let d = dir.display();
    let config = format!(
        r#"listen = "127.0.0.1:{mqtt}"
durability = "memory"
data_dir = "{d}/data"

[[listeners]]
address = "127.0.0.1:{tls}"
certfile = "{d}/server.pem"
keyfile = "{d}/server.key"

[[listeners]]
address = "127.0.0.1:{mtls}"
certfile = "{d}/server.pem"
keyfile = "{d}/server.key"
cafile = "{d}/ca.pem"
require_certificate = true

[[listeners]]
address = "127.0.0.1:{ws}"
protocol = "websocket"

[[listeners]]
address = "127.0.0.1:{wss}"
protocol = "websocket"
certfile = "{d}/server.pem"
keyfile = "{d}/server.key"
"#,
        mqtt = ports.mqtt,
        tls = ports.tls,
        mtls = ports.mtls,
        ws = ports.ws,
        wss = ports.wss,
    );
    let all = [ports.mqtt, ports.tls, ports.mtls, ports.ws, ports.wss];
    let service = pigeon_with_config(dir, &config, &all);
    (service, ports)
}

#[test]
fn mosquitto_clients_over_tls_and_mutual_tls() {
    if !have("mosquitto_pub") || !have("mosquitto_sub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_broker, ports) = broker_with_listeners(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let (ca, cert, key) = (file("ca.pem"), file("client.pem"), file("client.key"));
    let (tls, mtls, plain) = (
        ports.tls.to_string(),
        ports.mtls.to_string(),
        ports.mqtt.to_string(),
    );
    // A subscriber on the plain listener hears what comes in over TLS.
    let watcher = background(
        "/usr/bin/mosquitto_sub",
        &["-p", &plain, "-t", "tls/#", "-v", "-C", "2", "-W", "10"],
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = run(
        "/usr/bin/mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &tls,
            "--cafile",
            &ca,
            "-t",
            "tls/server-auth",
            "-m",
            "one",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "TLS: {}", stderr(&out));
    let out = run(
        "/usr/bin/mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &mtls,
            "--cafile",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "-t",
            "tls/mutual",
            "-m",
            "two",
        ],
        b"",
    );
    assert_eq!(code(&out), 0, "mutual TLS: {}", stderr(&out));
    let out = finish(watcher);
    assert_eq!(stdout(&out), "tls/server-auth one\ntls/mutual two\n");
    // Without a client certificate the mutual-TLS listener refuses.
    let out = run(
        "/usr/bin/mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &mtls,
            "--cafile",
            &ca,
            "-t",
            "t",
            "-m",
            "x",
        ],
        b"",
    );
    assert_ne!(code(&out), 0, "connected without a client certificate");
    // A client that does not trust the broker's CA gives up.
    let out = run(
        "/usr/bin/mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &tls,
            "--cafile",
            &cert,
            "-t",
            "t",
            "-m",
            "x",
        ],
        b"",
    );
    assert_ne!(code(&out), 0, "trusted a certificate from an unknown CA");
}

#[tokio::test]
async fn pigeon_client_over_every_transport() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, ports) = broker_with_listeners(dir.path());
    let tls = TlsOptions {
        ca_file: Some(dir.path().join("ca.pem")),
        ..TlsOptions::default()
    };
    let urls = [
        format!("mqtt://localhost:{}", ports.mqtt),
        format!("mqtts://localhost:{}", ports.tls),
        format!("ws://localhost:{}/mqtt", ports.ws),
        format!("wss://localhost:{}/mqtt", ports.wss),
    ];
    // One subscriber per transport, each hearing a publisher on every other.
    let mut subscribers = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let mut options = Options::from_url(url)
            .unwrap()
            .client_id(format!("sub-{i}"));
        options.protocol = Protocol::V5;
        if url.starts_with("mqtts") || url.starts_with("wss") {
            options = options.tls(tls.clone());
        }
        let (client, mut events) = AsyncClient::new(options);
        match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
            Ok(Some(Event::Connected { .. })) => {}
            other => panic!("{url}: {other:?}"),
        }
        client.subscribe("all/#", QoS::AtLeastOnce).await.unwrap();
        subscribers.push((client, events));
    }
    for (i, url) in urls.iter().enumerate() {
        let mut options = Options::from_url(url)
            .unwrap()
            .client_id(format!("pub-{i}"));
        if url.starts_with("mqtts") || url.starts_with("wss") {
            options = options.tls(tls.clone());
        }
        let (client, mut events) = AsyncClient::new(options);
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(10), events.recv()).await,
            Ok(Some(Event::Connected { .. }))
        ));
        // A payload larger than one WebSocket read, to cross frames.
        let payload = format!("from {url} ").repeat(2000);
        client
            .publish(&format!("all/{i}"), QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        client.disconnect().await.unwrap();
    }
    for (n, (client, events)) in subscribers.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < urls.len() {
            match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
                Ok(Some(Event::Message(m))) => {
                    assert!(m.payload.starts_with(b"from "), "subscriber {n}");
                    got.push(m.topic.as_str().to_owned());
                }
                Ok(Some(_)) => {}
                other => panic!("subscriber {n} ({}): {other:?} after {got:?}", urls[n]),
            }
        }
        assert_eq!(got, ["all/0", "all/1", "all/2", "all/3"], "subscriber {n}");
        client.disconnect().await.unwrap();
    }
}

#[tokio::test]
async fn a_bad_websocket_client_is_closed_and_no_one_else_notices() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, ports) = broker_with_listeners(dir.path());
    // A well-behaved client on the same listener.
    let url = format!("ws://127.0.0.1:{}/mqtt", ports.ws);
    let (good, mut good_events) = AsyncClient::new(Options::from_url(&url).unwrap());
    assert!(matches!(
        good_events.recv().await,
        Some(Event::Connected { .. })
    ));
    good.subscribe("ok", QoS::AtMostOnce).await.unwrap();

    // The wrong path: 404.
    let wrong = format!("ws://127.0.0.1:{}/other", ports.ws);
    let mut request = wrong.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ports.ws))
        .await
        .unwrap();
    let refused = tokio_tungstenite::client_async(request, tcp).await;
    assert!(
        matches!(&refused, Err(e) if e.to_string().contains("404")),
        "{refused:?}"
    );

    // MQTT-6.0.0-1: a text frame closes that connection.
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", ports.ws))
        .await
        .unwrap();
    let (mut bad, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(
        response.headers().get("sec-websocket-protocol").unwrap(),
        "mqtt",
        "MQTT-6.0.0-4: the server selects mqtt"
    );
    bad.send(Message::Text("CONNECT please".into()))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = bad.next().await {}
    })
    .await;
    assert!(
        closed.is_ok(),
        "the broker kept a connection that sent text"
    );

    // The good client still works.
    good.publish("ok", QoS::AtMostOnce, false, "still here")
        .await
        .unwrap();
    assert_eq!(next_payload(&mut good_events).await, b"still here"[..]);
}

#[test]
fn bad_listener_configuration_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    std::fs::write(dir.path().join("acl"), "user a\ntopic read a/#/b\n").unwrap();
    let d = dir.path().display();
    let tls = format!("certfile = \"{d}/server.pem\"\nkeyfile = \"{d}/server.key\"\n");
    for (config, says) in [
        (
            format!("[[listeners]]\naddress = \"127.0.0.1:0\"\ncertfile = \"{d}/x.pem\"\n"),
            "certfile and keyfile",
        ),
        // Catalogue TL4: an empty CA bundle never means "verify nothing".
        (
            format!("[[listeners]]\naddress = \"127.0.0.1:0\"\n{tls}cafile = \"{d}/empty.pem\"\n"),
            "empty.pem: no PEM certificate",
        ),
        (
            format!("[[listeners]]\naddress = \"127.0.0.1:0\"\n{tls}use_identity_as_username = true\n"),
            "needs require_certificate",
        ),
        (
            format!("acl_file = \"{d}/acl\"\n"),
            "line 2: `a/#/b` is not a valid topic filter",
        ),
        (
            format!("[[listeners]]\naddress = \"127.0.0.1:0\"\nacl_file = \"{d}/missing-acl\"\n"),
            "listeners[0].acl_file",
        ),
        (
            format!(
                "[[listeners]]\naddress = \"127.0.0.1:0\"\ncertfile = \"{d}/missing.pem\"\nkeyfile = \"{d}/missing.key\"\n"
            ),
            "missing.pem",
        ),
        (
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nrequire_certificate = true\n".to_owned(),
            "cafile",
        ),
        (
            "[[listeners]]\naddress = \"127.0.0.1:0\"\nprotocol = \"carrier-pigeon\"\n"
                .to_owned(),
            "expected `mqtt` or `websocket`",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, format!("durability = \"memory\"\ndata_dir = \"{d}/data\"\n{config}"))
            .unwrap();
        // Starting, and checking with --test-config, say the same.
        for check in [&["-p", "0"][..], &["--test-config"][..]] {
            let out = pigeon(&[&["broker", "-c", path.to_str().unwrap()][..], check].concat());
            assert_eq!(code(&out), 1, "{config} {check:?}");
            let err = stderr(&out);
            assert!(err.contains(says), "{config} {check:?}: {err}");
            assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        }
    }
}

#[tokio::test]
async fn with_no_configuration_websocket_listens_beside_mqtt() {
    let in_use = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
    if in_use(1883) || in_use(8083) {
        eprintln!("skipped: 127.0.0.1:1883 or :8083 is in use here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(PIGEON)
        .args(["broker", "--durability", "memory", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(1883);
    wait_listening(8083);
    let (ws, mut ws_events) =
        AsyncClient::new(Options::from_url("ws://127.0.0.1:8083/mqtt").unwrap());
    assert!(matches!(
        ws_events.recv().await,
        Some(Event::Connected { .. })
    ));
    ws.subscribe("default/#", QoS::AtLeastOnce).await.unwrap();
    let (tcp, mut tcp_events) = AsyncClient::new(Options::new("127.0.0.1", 1883));
    assert!(matches!(
        tcp_events.recv().await,
        Some(Event::Connected { .. })
    ));
    tcp.publish("default/x", QoS::AtLeastOnce, false, "across")
        .await
        .unwrap();
    assert_eq!(next_payload(&mut ws_events).await, b"across"[..]);
    tcp.disconnect().await.unwrap();
    ws.disconnect().await.unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("MQTT on 127.0.0.1:1883")
            && printed.contains(
                "MQTT over WebSocket at /mqtt (anonymous clients allowed) on 127.0.0.1:8083"
            ),
        "{printed}"
    );
    // `-p PORT` alone opens that one listener.
    let broker = pigeon_broker();
    wait_listening(broker.port);
    assert!(
        !in_use(8083),
        "-p opened the default WebSocket listener too"
    );
}

#[test]
fn a_listener_open_to_the_network_wants_a_user_name_unless_told_otherwise() {
    // Bound to 0.0.0.0 (reached here through 127.0.0.1): not loopback, so
    // anonymous clients are refused there by default, as in mosquitto 2;
    // a listener that says allow_anonymous = true admits them.
    if !have("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (local, open, open_anonymous) = (free_port(), free_port(), free_port());
    let config = dir.path().join("pigeon.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{local}\"\ndurability = \"memory\"\ndata_dir = \"{}\"\n\
             [[listeners]]\naddress = \"0.0.0.0:{open}\"\n\
             [[listeners]]\naddress = \"0.0.0.0:{open_anonymous}\"\nallow_anonymous = true\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(PIGEON)
        .args(["broker", "-c", config.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for port in [local, open, open_anonymous] {
        wait_listening(port);
    }
    let publish = |port: u16, version: &str, user: Option<&str>| {
        let port = port.to_string();
        let mut args = vec!["-p", &port, "-V", version, "-t", "t", "-m", "x"];
        if let Some(user) = user {
            args.extend(["-u", user]);
        }
        code(&run("/usr/bin/mosquitto_pub", &args, b""))
    };
    assert_eq!(
        publish(local, "311", None),
        0,
        "loopback admits anonymous clients"
    );
    assert_eq!(publish(open, "311", None), 5, "3.1.1: Not authorized");
    assert_eq!(publish(open, "5", None), 135, "5.0: 0x87 Not authorized");
    assert_eq!(
        publish(open, "311", Some("someone")),
        0,
        "a user name is enough without a password file"
    );
    assert_eq!(
        publish(open_anonymous, "5", None),
        0,
        "allow_anonymous = true"
    );
    let _ = child.kill();
    let printed = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
    assert!(
        printed.contains(&format!(
            "MQTT on 127.0.0.1:{local} (anonymous clients allowed)"
        )),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("MQTT (user name required) on 0.0.0.0:{open}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!(
            "MQTT (anonymous clients allowed) on 0.0.0.0:{open_anonymous}"
        )),
        "{printed}"
    );
}

#[tokio::test]
async fn sighup_reloads_certificates_and_passwords_without_dropping_anyone() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    std::fs::create_dir_all(&first).unwrap();
    std::fs::create_dir_all(&second).unwrap();
    make_pki(&first);
    make_pki(&second);
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).unwrap();
    for name in ["server.pem", "server.key"] {
        std::fs::copy(first.join(name), live.join(name)).unwrap();
    }
    let passwords = dir.path().join("passwords");
    let pw = passwords.to_str().unwrap();
    let out = pigeon(&["passwd", "-c", "-b", "-H", "sha512", pw, "alice", "one"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let (plain, tls) = (free_port(), free_port());
    let config = dir.path().join("pigeon.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{plain}\"\ndurability = \"memory\"\ndata_dir = \"{d}/data\"\npassword_file = \"{pw}\"\n\
             [[listeners]]\naddress = \"127.0.0.1:{tls}\"\ncertfile = \"{l}/server.pem\"\nkeyfile = \"{l}/server.key\"\n",
            d = dir.path().display(),
            l = live.display()
        ),
    )
    .unwrap();
    let log = dir.path().join("broker.log");
    let mut broker = std::process::Command::new(PIGEON)
        .args(["broker", "-c", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_listening(plain);
    wait_listening(tls);
    let ca = |d: &Path| d.join("ca.pem").display().to_string();
    let (tls_port, plain_port) = (tls.to_string(), plain.to_string());
    let publish = |ca_file: &str, user: &str, password: &str| {
        let args = [
            "pub",
            "-h",
            "localhost",
            "-p",
            &tls_port,
            "--cafile",
            ca_file,
            "-u",
            user,
            "-P",
            password,
            "-t",
            "hup/x",
            "-m",
            "x",
            "-q",
            "1",
        ];
        code(&run(PIGEON, &args, b""))
    };
    assert_eq!(publish(&ca(&first), "alice", "one"), 0);
    // A client connected before the reload, over TLS.
    let options = Options::new("localhost", tls)
        .credentials("alice", Some(b"one"))
        .tls(TlsOptions {
            ca_file: Some(first.join("ca.pem")),
            ..TlsOptions::default()
        });
    let (early, mut early_events) = AsyncClient::new(options.client_id("early"));
    assert!(matches!(
        early_events.recv().await,
        Some(Event::Connected { .. })
    ));
    early.subscribe("hup/#", QoS::AtLeastOnce).await.unwrap();

    // New certificate and password, then SIGHUP.
    for name in ["server.pem", "server.key"] {
        std::fs::copy(second.join(name), live.join(name)).unwrap();
    }
    let out = pigeon(&["passwd", "-b", "-H", "sha512", pw, "alice", "two"]);
    assert_eq!(code(&out), 0);
    let hup = |pid: u32| {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    hup(broker.id());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while publish(&ca(&second), "alice", "two") != 0 {
        assert!(std::time::Instant::now() < deadline, "no reload");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_ne!(
        publish(&ca(&first), "alice", "two"),
        0,
        "the old certificate is gone"
    );
    let refused = run(
        PIGEON,
        &[
            "pub",
            "-p",
            &plain_port,
            "-u",
            "alice",
            "-P",
            "one",
            "-t",
            "t",
            "-m",
            "x",
        ],
        b"",
    );
    assert_eq!(code(&refused), 4, "the old password is gone");
    // The early client was not dropped: it still hears what is published.
    let mut heard = 0;
    while heard < 1 {
        match tokio::time::timeout(Duration::from_secs(5), early_events.recv()).await {
            Ok(Some(Event::Message(m))) if m.topic.as_str() == "hup/x" => heard += 1,
            Ok(Some(Event::Disconnected { .. })) => panic!("the reload dropped a client"),
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    // A broken password file: the old one stays, and the log says so.
    std::fs::write(&passwords, "alice:$7$garbage\n").unwrap();
    hup(broker.id());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        publish(&ca(&second), "alice", "two"),
        0,
        "the running file stays"
    );
    let _ = broker.kill();
    let _ = broker.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("password_file") && logged.contains("the old one stays"),
        "{logged}"
    );
    drop(early);
}
