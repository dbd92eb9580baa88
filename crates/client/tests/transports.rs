//! The client's TLS and WebSocket transports.
//!
//! TLS against Debian's mosquitto with a TLS listener (certificates made
//! here with rcgen): server verification against a CA file, a client
//! certificate the broker requires, and the refusals a user must see.
//! WebSocket and WebSocket over TLS against a Pigeon broker behind a small
//! WebSocket server written here (Debian's mosquitto is built without
//! WebSocket support), which checks the upgrade request the way a broker
//! does: path, subprotocol `mqtt`, extra headers, binary frames only.
// tungstenite fixes the upgrade callback's (large) error type.
#![allow(clippy::unwrap_used, clippy::result_large_err)]

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use pigeon_client::{AsyncClient, ClientError, Event, Options, Protocol, QoS, TlsOptions};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::*;

/// A CA, a server certificate for `localhost` and a client certificate,
/// as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Pigeon test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", ca_cert.pem());
        for (name, subject) in [("server", "localhost"), ("client", "pigeon-client")] {
            let mut params = CertificateParams::new(vec![subject.to_owned()]).unwrap();
            params.distinguished_name.push(DnType::CommonName, subject);
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}.key"), key.serialize_pem());
        }
        // A second CA that signed nothing here: trusting only it must fail.
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let other = other.self_signed(&KeyPair::generate().unwrap()).unwrap();
        write("other-ca.pem", other.pem());
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn client_tls(&self) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.path("ca.pem")),
            client_cert: Some((self.path("client.pem"), self.path("client.key"))),
            ..TlsOptions::default()
        }
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(self.path("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Arc::new(config)
    }
}

/// mosquitto with a TLS listener that requires a client certificate.
fn mosquitto_tls(pki: &Pki) -> Option<Mosquitto> {
    let p = |name: &str| pki.path(name).display().to_string();
    Mosquitto::start_with(&format!(
        "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        p("ca.pem"),
        p("server.pem"),
        p("server.key")
    ))
}

/// Publishes on one client and receives on another, both connected with
/// `options` (and distinct client ids).
async fn round_trip(options: &Options, topic: &str) {
    let (sub, mut sub_events) = AsyncClient::new(options.clone().client_id(format!("{topic}-s")));
    assert!(!connected(&mut sub_events).await);
    sub.subscribe(topic, QoS::ExactlyOnce).await.unwrap();
    let (publisher, mut pub_events) =
        AsyncClient::new(options.clone().client_id(format!("{topic}-p")));
    connected(&mut pub_events).await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("over {:?} at {qos:?}", options.transport);
        publisher
            .publish(topic, qos, false, payload.clone())
            .await
            .unwrap();
        let m = message(&mut sub_events).await;
        assert_eq!(
            (m.topic.as_str(), &m.payload[..]),
            (topic, payload.as_bytes())
        );
        assert_eq!(m.qos, qos);
    }
    publisher.disconnect().await.unwrap();
    sub.disconnect().await.unwrap();
}

/// The first event, which must be a failed connection; its error.
async fn refused(options: Options) -> ClientError {
    let (client, mut events) = AsyncClient::new(options.reconnect(None));
    let event = next(&mut events).await;
    drop(client);
    match event {
        Event::ConnectFailed(e) => e,
        other => panic!("expected ConnectFailed, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_to_mosquitto_with_a_ca_file_and_a_client_certificate() {
    let pki = Pki::new();
    let Some(mosquitto) = mosquitto_tls(&pki) else {
        eprintln!("skipped: /usr/sbin/mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let options = Options::new("localhost", mosquitto.port)
            .protocol(protocol)
            .tls(pki.client_tls());
        round_trip(&options, &format!("tls/{protocol:?}")).await;
    }
    // The same, from a URL.
    let url = format!("mqtts://localhost:{}", mosquitto.port);
    let options = Options::from_url(&url).unwrap().tls(pki.client_tls());
    round_trip(&options, "tls/url").await;
}

#[tokio::test]
async fn tls_refusals_say_why() {
    let pki = Pki::new();
    let Some(mosquitto) = mosquitto_tls(&pki) else {
        eprintln!("skipped: /usr/sbin/mosquitto is not installed (apt-get install mosquitto)");
        return;
    };
    let base = || Options::new("localhost", mosquitto.port);

    // A broker certificate from a CA the client does not trust.
    let untrusted = TlsOptions {
        ca_file: Some(pki.path("other-ca.pem")),
        ..pki.client_tls()
    };
    let e = refused(base().tls(untrusted)).await;
    assert!(
        matches!(&e, ClientError::Tls(why) if why.contains("UnknownIssuer")),
        "{e}"
    );

    // The certificate is for localhost, not 127.0.0.1 ...
    let by_address = Options::new("127.0.0.1", mosquitto.port);
    let e = refused(by_address.clone().tls(pki.client_tls())).await;
    assert!(
        matches!(&e, ClientError::Tls(why) if why.contains("not valid for name")),
        "{e}"
    );
    // ... which `insecure` lets through (the chain is still checked).
    let insecure = TlsOptions {
        insecure: true,
        ..pki.client_tls()
    };
    round_trip(&by_address.clone().tls(insecure.clone()), "tls/insecure").await;
    let insecure_untrusted = TlsOptions {
        ca_file: Some(pki.path("other-ca.pem")),
        ..insecure
    };
    let e = refused(by_address.tls(insecure_untrusted)).await;
    assert!(matches!(&e, ClientError::Tls(_)), "{e}");

    // mosquitto requires a client certificate: without one the handshake
    // (or the first read after it, in TLS 1.3) fails, and no CONNACK comes.
    let no_cert = TlsOptions {
        client_cert: None,
        ..pki.client_tls()
    };
    let (client, mut events) = AsyncClient::new(base().tls(no_cert).reconnect(None));
    match next(&mut events).await {
        Event::ConnectFailed(_) | Event::Disconnected { .. } => {}
        other => panic!("connected without a client certificate: {other:?}"),
    }
    drop(client);

    // Files that are not there are reported at once, naming the file.
    let missing = TlsOptions {
        ca_file: Some(pki.path("nowhere.pem")),
        ..TlsOptions::default()
    };
    let e = refused(base().tls(missing)).await;
    assert!(e.to_string().contains("nowhere.pem"), "{e}");
    let not_pem = TlsOptions {
        ca_file: Some(pki.path("server.key")),
        ..TlsOptions::default()
    };
    let e = refused(base().tls(not_pem)).await;
    assert!(e.to_string().contains("no PEM certificate"), "{e}");
}

/// What the WebSocket server saw of an upgrade request.
#[derive(Debug, Clone, Default)]
struct Upgrade {
    path: String,
    subprotocol: Option<String>,
    authorization: Option<String>,
}

/// A WebSocket server in front of a Pigeon broker, as a broker's WebSocket
/// listener would be: it accepts an upgrade only for `/mqtt` or `/custom`
/// with subprotocol `mqtt`, answers with that subprotocol, and carries
/// binary frames to the broker's TCP port and back. With `tls`, it is a
/// WSS server.
async fn ws_server(
    broker: std::net::SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (u16, tokio::sync::mpsc::UnboundedReceiver<Upgrade>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => bridge(tcp, broker, seen).await,
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            bridge(stream, broker, seen).await;
                        }
                    }
                }
            });
        }
    });
    (port, seen_rx)
}

async fn bridge<S>(
    stream: S,
    broker: std::net::SocketAddr,
    seen: tokio::sync::mpsc::UnboundedSender<Upgrade>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let check = |request: &Request, mut response: Response| {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let upgrade = Upgrade {
            path: request.uri().path().to_owned(),
            subprotocol: header("sec-websocket-protocol"),
            authorization: header("authorization"),
        };
        let _ = seen.send(upgrade.clone());
        let path_known = ["/mqtt", "/custom"].contains(&upgrade.path.as_str());
        if !path_known || upgrade.subprotocol.as_deref() != Some("mqtt") {
            let mut refusal = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(
                Some("not an MQTT endpoint".into()),
            );
            *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        response
            .headers_mut()
            .insert("sec-websocket-protocol", HeaderValue::from_static("mqtt"));
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else {
        return;
    };
    let tcp = TcpStream::connect(broker).await.unwrap();
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let (mut ws_write, mut ws_read) = ws.split();
    let up = async {
        while let Some(Ok(frame)) = ws_read.next().await {
            let carry_on = match frame {
                Message::Binary(data) => tcp_write.write_all(&data).await.is_ok(),
                Message::Close(_) | Message::Text(_) => false,
                _ => true,
            };
            if !carry_on {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = tcp_read.read(&mut buf).await {
            let frame = Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
            if ws_write.send(frame).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[tokio::test]
async fn websocket_and_secure_websocket_to_a_broker() {
    let pigeon = broker().await;
    let pki = Pki::new();
    let (ws_port, mut ws_seen) = ws_server(pigeon.local_addr(), None).await;
    let (wss_port, mut wss_seen) = ws_server(pigeon.local_addr(), Some(pki.server_config())).await;

    // ws:// with the default path, in both protocol versions.
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        let url = format!("ws://localhost:{ws_port}");
        let options = Options::from_url(&url).unwrap().protocol(protocol);
        round_trip(&options, &format!("ws/{protocol:?}")).await;
    }
    let upgrade = ws_seen.recv().await.unwrap();
    assert_eq!(upgrade.path, "/mqtt");
    assert_eq!(
        upgrade.subprotocol.as_deref(),
        Some("mqtt"),
        "[MQTT-6.0.0-3]: the client offers the mqtt subprotocol"
    );

    // wss:// with a path from the URL and a header the application adds.
    let url = format!("wss://localhost:{wss_port}/custom");
    let tls = TlsOptions {
        ca_file: Some(pki.path("ca.pem")),
        ..TlsOptions::default()
    };
    let options = Options::from_url(&url)
        .unwrap()
        .tls(tls)
        .ws_header("Authorization", "Bearer token-1");
    round_trip(&options, "wss").await;
    let upgrade = wss_seen.recv().await.unwrap();
    assert_eq!(upgrade.path, "/custom");
    assert_eq!(upgrade.authorization.as_deref(), Some("Bearer token-1"));

    // An endpoint that is not there: the error names the URL's path.
    let url = format!("ws://localhost:{ws_port}/elsewhere");
    let e = refused(Options::from_url(&url).unwrap()).await;
    assert!(
        matches!(&e, ClientError::WebSocket(why) if why.contains("/elsewhere") && why.contains("404")),
        "{e}"
    );
    // A plain MQTT port is not a WebSocket server.
    let plain = pigeon.local_addr();
    let url = format!("ws://127.0.0.1:{}", plain.port());
    let e = refused(Options::from_url(&url).unwrap()).await;
    assert!(matches!(&e, ClientError::WebSocket(_)), "{e}");
}

#[test]
fn paho_style_tls_and_websocket_setters() {
    // The blocking client's tls_set / ws_set_options reach the same
    // transports: paho's quick start over WSS with a CA file.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pki = Pki::new();
    let (pigeon, wss_port, _seen) = runtime.block_on(async {
        let pigeon = broker().await;
        let (port, seen) = ws_server(pigeon.local_addr(), Some(pki.server_config())).await;
        (pigeon, port, seen)
    });
    let ca = pki.path("ca.pem").display().to_string();
    let client = pigeon_client::Client::new("paho-wss", Protocol::V5);
    client.tls_set(Some(&ca), None, None);
    client.ws_set_options("/mqtt", &[("X-Trace", "1")]);
    let (got, got_rx) = std::sync::mpsc::channel();
    client.on_message(move |_, m| {
        let _ = got.send(m.payload.clone());
    });
    client.on_connect(|c, _flags, code, _props| {
        assert!(!code.is_error(), "{code:?}");
        c.subscribe("paho/wss", QoS::AtLeastOnce).unwrap();
    });
    client.connect("localhost", wss_port, 30).unwrap();
    client.loop_start();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        // Publish until the subscription is in place and one comes back.
        client
            .publish("paho/wss", "hello over wss", QoS::AtLeastOnce, false)
            .wait_for_publish(WAIT);
        if let Ok(payload) = got_rx.recv_timeout(std::time::Duration::from_millis(200)) {
            assert_eq!(&payload[..], b"hello over wss");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no message over wss");
    }
    client.disconnect().unwrap();
    client.loop_stop();
    drop(pigeon);
    drop(runtime);
}

// MQTT-6.0.0-2: packets are not aligned on frames; MQTT-6.0.0-1: a text
// frame closes the connection.
#[tokio::test]
async fn websocket_packets_split_across_frames_and_a_text_frame_closes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let answer = |_: &Request, mut response: Response| {
            let mqtt = HeaderValue::from_static("mqtt");
            response
                .headers_mut()
                .insert("sec-websocket-protocol", mqtt);
            Ok(response)
        };
        let mut ws = tokio_tungstenite::accept_hdr_async(tcp, answer)
            .await
            .unwrap();
        // CONNECT, however it is framed.
        let Some(Ok(Message::Binary(_))) = ws.next().await else {
            panic!("no CONNECT")
        };
        // CONNACK then a QoS 0 PUBLISH "a/b" "hi", cut in three frames
        // that do not follow packet boundaries.
        let bytes: &[u8] = &[
            0x20, 0x02, 0x00, 0x00, 0x30, 0x07, 0, 3, b'a', b'/', b'b', b'h', b'i',
        ];
        for part in [&bytes[..1], &bytes[1..6], &bytes[6..]] {
            let frame = Message::Binary(bytes::Bytes::copy_from_slice(part));
            ws.send(frame).await.unwrap();
        }
        ws.send(Message::Text("not MQTT".into())).await.unwrap();
        // The client closes: the stream ends (after its close frame, if any).
        let closed = tokio::time::timeout(WAIT, async {
            while let Some(Ok(frame)) = ws.next().await {
                if let Message::Close(_) = frame {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the client kept the connection open");
    });
    let url = format!("ws://127.0.0.1:{port}");
    let options = Options::from_url(&url).unwrap().reconnect(None);
    let (client, mut events) = AsyncClient::new(options);
    assert!(!connected(&mut events).await);
    let m = message(&mut events).await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("a/b", &b"hi"[..]));
    match next(&mut events).await {
        Event::Disconnected { reconnecting, .. } => assert!(!reconnecting),
        other => panic!("expected the text frame to end the connection: {other:?}"),
    }
    server.await.unwrap();
    drop(client);
}
