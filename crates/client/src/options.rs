//! How to connect: broker address and transport (TCP, TLS, WebSocket,
//! WebSocket over TLS), client id, protocol, session, will, credentials,
//! limits and reconnection. Built with methods or read from a URL such as
//! `mqtts://user:password@host:8883`.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use pigeon_proto::codec::Will;
use pigeon_proto::properties::Properties;
use pigeon_proto::topic::TopicName;
use pigeon_proto::{Protocol, QoS};

/// What is wrong with options or a URL, said so it can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OptionsError {
    /// The URL cannot be used.
    #[error("{url}: {why}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong, and what is accepted.
        why: String,
    },
    /// A value out of range.
    #[error("{what}: {why}")]
    Value {
        /// The option.
        what: &'static str,
        /// Why.
        why: String,
    },
}

/// How bytes reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// MQTT over TCP (`mqtt://`, port 1883).
    #[default]
    Tcp,
    /// MQTT over TLS (`mqtts://`, port 8883).
    Tls,
    /// MQTT over WebSocket (`ws://`), binary frames, subprotocol `mqtt`.
    WebSocket,
    /// MQTT over WebSocket over TLS (`wss://`).
    WebSocketTls,
}

impl Transport {
    /// Whether the connection is encrypted.
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::WebSocketTls)
    }

    /// Whether MQTT travels in WebSocket frames.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::WebSocket | Transport::WebSocketTls)
    }
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// TLS settings (rustls). The default trusts the system's root
/// certificates and checks that the broker's certificate is for the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
    /// A directory of PEM CA certificates to trust (with `ca_file`, both).
    pub ca_dir: Option<PathBuf>,
    /// A PEM certificate (chain) and its PEM private key, for brokers that
    /// ask for a client certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Accept a certificate that is not for the host name (its chain is
    /// still verified): paho's `tls_insecure_set(True)`, mosquitto_pub's
    /// `--insecure`. For test set-ups only.
    pub insecure: bool,
    /// The name to ask for (SNI) and verify, instead of the host.
    pub server_name: Option<String>,
    /// ALPN protocols to offer, e.g. `x-amzn-mqtt-ca`.
    pub alpn: Vec<String>,
    /// The TLS versions allowed; empty allows 1.2 and 1.3.
    pub versions: Vec<TlsVersion>,
}

/// Reconnection after a lost connection: exponential backoff from `min` to
/// `max`, each wait shortened by up to `jitter` (0 to 1) of itself at random.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First wait.
    pub min: Duration,
    /// Longest wait.
    pub max: Duration,
    /// Fraction of each wait taken off at random, so clients that lost the
    /// broker together do not all come back at once.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (0 for the first retry).
    pub fn delay(&self, n: u32, random: f64) -> Duration {
        let base = self.min.as_secs_f64() * 2f64.powi(n.min(30) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let cut = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        Duration::from_secs_f64(capped * (1.0 - cut))
    }
}

/// How to connect. `Options::new("localhost", 1883)` gives MQTT 3.1.1, a
/// clean session, a random client id, 60 s keep-alive and reconnection with
/// backoff.
#[derive(Debug, Clone)]
pub struct Options {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// TCP, TLS, WebSocket or WebSocket over TLS.
    pub transport: Transport,
    /// TLS settings, used by the TLS transports.
    pub tls: TlsOptions,
    /// The WebSocket request path (`/mqtt` unless the URL gives one).
    pub ws_path: String,
    /// Extra headers for the WebSocket upgrade request (e.g.
    /// `Authorization`).
    pub ws_headers: Vec<(String, String)>,
    /// Client identifier; empty asks the broker to assign one (v5, or 3.1.1
    /// with a clean session).
    pub client_id: String,
    /// MQTT version.
    pub protocol: Protocol,
    /// Clean session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// v5 Session Expiry Interval in seconds (`None`: 0, the session ends
    /// with the connection; `Some(u32::MAX)`: never expires).
    pub session_expiry: Option<u32>,
    /// Keep-alive; zero turns it off.
    pub keep_alive: Duration,
    /// The will, published by the broker if the connection ends abnormally.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
    /// QoS 1/2 messages in flight at once (below the broker's Receive
    /// Maximum).
    pub max_inflight: u16,
    /// Messages waiting to be sent (window full or disconnected); beyond
    /// this, `publish` fails with `ClientError::QueueFull`.
    pub max_queued: usize,
    /// Reconnect after a lost connection; `None` stops instead.
    pub reconnect: Option<Backoff>,
    /// Subscribe again to every filter after reconnecting to a broker that
    /// kept no session.
    pub resubscribe: bool,
    /// Incoming QoS 1/2 messages are acknowledged only when the
    /// application calls `ack` (after it has processed them).
    pub manual_acks: bool,
    /// How long a connection attempt may take (TCP and CONNACK).
    pub connect_timeout: Duration,
    /// v5 CONNECT properties (beyond Session Expiry, which has its option).
    pub connect_properties: Properties,
    /// A file keeping the session across restarts of the process (see
    /// [`Options::session_store`]); `None` keeps it in memory.
    pub session_store: Option<std::path::PathBuf>,
    /// Report every packet sent and received as `Event::Log`, in
    /// libmosquitto's words, which paho's `on_log` also follows ("Sending
    /// PUBLISH (d0, q1, r0, m3, 'a/b', ... (5 bytes))"). Off by default: it
    /// costs a string per packet.
    pub log_packets: bool,
}

impl Options {
    /// Options for the broker at `host:port`, with the defaults above.
    pub fn new(host: impl Into<String>, port: u16) -> Options {
        Options {
            host: host.into(),
            port,
            transport: Transport::Tcp,
            tls: TlsOptions::default(),
            ws_path: "/mqtt".to_owned(),
            ws_headers: Vec::new(),
            client_id: String::new(),
            protocol: Protocol::V3_1_1,
            clean_start: true,
            session_expiry: None,
            keep_alive: Duration::from_secs(60),
            will: None,
            username: None,
            password: None,
            max_inflight: 100,
            max_queued: 10_000,
            reconnect: Some(Backoff::default()),
            resubscribe: true,
            manual_acks: false,
            connect_timeout: Duration::from_secs(10),
            connect_properties: Properties::default(),
            session_store: None,
            log_packets: false,
        }
    }

    /// Keeps the session in a file: QoS 1/2 messages from the moment
    /// `publish` accepts them until they are acknowledged, incoming QoS 2
    /// identifiers until PUBREL, and the subscriptions. A process started
    /// again with the same file and client id resends what was not
    /// acknowledged (with DUP and its identifier, so no QoS 2 duplicate).
    /// Use it with a persistent session ([`Options::persistent`]).
    pub fn session_store(mut self, path: impl Into<std::path::PathBuf>) -> Options {
        self.session_store = Some(path.into());
        self
    }

    /// Reads `scheme://[user[:password]@]host[:port][/path]`. The scheme
    /// picks the transport and default port: `mqtt://` (or `tcp://`) 1883,
    /// `mqtts://` (or `ssl://`, `tls://`) 8883, `ws://` 80 and `wss://`
    /// 443. A WebSocket URL's path is the request path (`/mqtt` if none).
    pub fn from_url(url: &str) -> Result<Options, OptionsError> {
        let bad = |why: &str| OptionsError::Url {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            bad("want mqtt://, mqtts://, ws:// or wss:// then [user[:password]@]host[:port]")
        })?;
        let (transport, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "mqtt" | "tcp" => (Transport::Tcp, 1883),
            "mqtts" | "ssl" | "tls" => (Transport::Tls, 8883),
            "ws" => (Transport::WebSocket, 80),
            "wss" => (Transport::WebSocketTls, 443),
            _ => return Err(bad("the scheme must be mqtt://, mqtts://, ws:// or wss://")),
        };
        let (rest, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if !transport.is_websocket() && !path.trim_end_matches('/').is_empty() {
            return Err(bad("only ws:// and wss:// URLs take a path"));
        }
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((c, a)) => (Some(c), a),
            None => (None, rest),
        };
        let (host, port) = match address.rsplit_once(':') {
            // An IPv6 literal in brackets keeps its colons.
            Some((h, p)) if !p.contains(']') => {
                let port = p
                    .parse()
                    .map_err(|_| bad("the port must be a number from 1 to 65535"))?;
                (h, port)
            }
            _ => (address, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let mut options = Options::new(host, port);
        options.transport = transport;
        if !path.is_empty() {
            options.ws_path = path.to_owned();
        }
        if let Some(credentials) = credentials {
            let (user, password) = match credentials.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (credentials, None),
            };
            options.username = Some(user.to_owned());
            options.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
        }
        Ok(options)
    }

    /// Connects over TLS (keeping WebSocket if chosen) with these settings.
    pub fn tls(mut self, tls: TlsOptions) -> Options {
        self.transport = match self.transport {
            Transport::WebSocket | Transport::WebSocketTls => Transport::WebSocketTls,
            Transport::Tcp | Transport::Tls => Transport::Tls,
        };
        self.tls = tls;
        self
    }

    /// Connects over WebSocket (keeping TLS if chosen), requesting `path`.
    pub fn websocket(mut self, path: &str) -> Options {
        self.transport = match self.transport {
            Transport::Tls | Transport::WebSocketTls => Transport::WebSocketTls,
            Transport::Tcp | Transport::WebSocket => Transport::WebSocket,
        };
        self.ws_path = path.to_owned();
        self
    }

    /// Adds a header to the WebSocket upgrade request.
    pub fn ws_header(mut self, name: &str, value: &str) -> Options {
        self.ws_headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the client identifier.
    pub fn client_id(mut self, id: impl Into<String>) -> Options {
        self.client_id = id.into();
        self
    }

    /// Sets the MQTT version.
    pub fn protocol(mut self, protocol: Protocol) -> Options {
        self.protocol = protocol;
        self
    }

    /// A persistent session (Clean Session / Clean Start 0) that a v5
    /// broker keeps for `expiry` seconds after a disconnection.
    pub fn persistent(mut self, expiry: u32) -> Options {
        self.clean_start = false;
        self.session_expiry = Some(expiry);
        self
    }

    /// Sets the keep-alive.
    pub fn keep_alive(mut self, keep_alive: Duration) -> Options {
        self.keep_alive = keep_alive;
        self
    }

    /// Sets the will.
    pub fn will(
        mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<Options, OptionsError> {
        let topic = TopicName::try_from(topic).map_err(|e| OptionsError::Value {
            what: "will topic",
            why: e.to_string(),
        })?;
        self.will = Some(Will {
            topic,
            payload: payload.into(),
            qos,
            retain,
            properties: Properties::default(),
        });
        Ok(self)
    }

    /// Sets user name and password.
    pub fn credentials(mut self, username: &str, password: Option<&[u8]>) -> Options {
        self.username = Some(username.to_owned());
        self.password = password.map(Bytes::copy_from_slice);
        self
    }

    /// Sets or turns off reconnection.
    pub fn reconnect(mut self, backoff: Option<Backoff>) -> Options {
        self.reconnect = backoff;
        self
    }

    /// Acknowledge incoming QoS 1/2 messages only on `ack`.
    pub fn manual_acks(mut self, on: bool) -> Options {
        self.manual_acks = on;
        self
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_credentials() {
        let o = Options::from_url("mqtt://alice:s3cret@broker.example:1884").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("broker.example", 1884));
        assert_eq!(o.username.as_deref(), Some("alice"));
        assert_eq!(o.password.as_deref(), Some(&b"s3cret"[..]));
        let o = Options::from_url("mqtt://localhost").unwrap();
        assert_eq!(
            (o.host.as_str(), o.port, o.username),
            ("localhost", 1883, None)
        );
        let o = Options::from_url("mqtt://[::1]:1999/").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("::1", 1999));
        assert_eq!(o.address(), "[::1]:1999");
        assert_eq!(o.transport, Transport::Tcp);
    }

    #[test]
    fn the_scheme_picks_transport_and_default_port() {
        for (url, transport, port, path) in [
            ("mqtts://h", Transport::Tls, 8883, "/mqtt"),
            ("ssl://h:9883", Transport::Tls, 9883, "/mqtt"),
            ("ws://h", Transport::WebSocket, 80, "/mqtt"),
            ("ws://h:9001/", Transport::WebSocket, 9001, "/"),
            (
                "wss://u:p@h/ws/mqtt",
                Transport::WebSocketTls,
                443,
                "/ws/mqtt",
            ),
        ] {
            let o = Options::from_url(url).unwrap();
            assert_eq!(
                (o.transport, o.port, o.ws_path.as_str(), o.host.as_str()),
                (transport, port, path, "h"),
                "{url}"
            );
        }
        let o = Options::new("h", 1)
            .websocket("/x")
            .tls(TlsOptions::default());
        assert_eq!(o.transport, Transport::WebSocketTls);
    }

    #[test]
    fn bad_urls_say_what_is_accepted() {
        for (url, says) in [
            ("localhost:1883", "mqtt://"),
            ("mqtt://host/path", "only ws://"),
            ("mqtt://host:port", "a number"),
            ("http://host", "mqtt://"),
        ] {
            let e = Options::from_url(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_jitter_only_shortens() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.5,
        };
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(2, 0.0), Duration::from_millis(400));
        assert_eq!(b.delay(10, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(10, 1.0), Duration::from_millis(500));
    }
}
