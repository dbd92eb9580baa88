//! The `[[listeners]]` of the configuration: what each does to an accepted
//! TCP connection before MQTT starts. Plain MQTT starts at once; TLS runs
//! the rustls handshake (TLS 1.2/1.3, ALPN `mqtt`, client certificates
//! checked against `cafile` when configured); WebSocket runs the HTTP
//! upgrade at the configured path with subprotocol `mqtt` (or `mqttv3.1`),
//! over TLS for WSS. Handshakes are bounded in time and run in the
//! connection's own task. A TLS listener's certificate and key are held
//! in a slot that `reload` (SIGHUP) replaces: new connections get the new
//! certificate, open ones keep theirs.
//!
//! Each listener's connections share a [`Listener`]: its auth settings,
//! its connection count and rate limits, and whether connections start
//! with a PROXY protocol header (read before TLS, within the same time
//! bound; the client's address is then the one the proxy gives).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::acl::Identity;
use crate::broker::Shared;
use crate::config::{Config, ListenerConfig, ListenerProtocol};
use crate::transport::{Stream, WsIo};

/// What the connections of one listener share.
#[derive(Debug)]
pub(crate) struct Listener {
    /// Index in `config.listeners`; `None` for `listen`.
    pub index: Option<usize>,
    /// What it speaks and where, for logs ("MQTT over TLS on 0.0.0.0:8883").
    pub name: String,
    /// Clients without a user name may connect.
    pub anonymous: bool,
    /// The client certificate's identity is the user name.
    pub identity_as_username: bool,
    /// Connections start with a PROXY protocol header.
    pub proxy: bool,
    /// Concurrent connections allowed, and open now.
    pub max_connections: usize,
    pub open: AtomicUsize,
    /// The identity its anonymous clients share (one allocation).
    pub anonymous_identity: Arc<Identity>,
    rate: Rate,
}

/// Connections per second, for the listener and per source address.
#[derive(Debug)]
struct Rate {
    per_listener: u32,
    per_source: u32,
    epoch: Instant,
    window: Mutex<Window>,
}

/// This second's count.
#[derive(Debug, Default)]
struct Window {
    second: u64,
    count: u32,
    sources: HashMap<IpAddr, u32>,
    /// Refused since the last refusal logged.
    refused: u64,
    /// A refusal was logged this second.
    logged: bool,
}

impl Listener {
    /// The listener `index` names (`None`: `listen`) in `config`.
    pub fn new(config: &Config, index: Option<usize>, what: &str, at: SocketAddr) -> Listener {
        let own = index.and_then(|i| config.listeners.get(i));
        let anonymous = match own {
            Some(l) => config.anonymous_allowed(l.address, l.allow_anonymous),
            None => config.anonymous_allowed(config.listen, None),
        };
        let limits = &config.limits;
        Listener {
            index,
            name: format!("{what} on {at}"),
            anonymous,
            identity_as_username: own.is_some_and(|l| l.use_identity_as_username),
            proxy: own.is_some_and(|l| l.proxy_protocol),
            max_connections: own.and_then(|l| l.max_connections).unwrap_or(usize::MAX),
            open: AtomicUsize::new(0),
            anonymous_identity: Arc::new(Identity {
                username: None,
                listener: index,
                listener_name: Identity::name_of(index, config),
            }),
            rate: Rate {
                per_listener: own
                    .and_then(|l| l.connection_rate)
                    .unwrap_or(limits.connection_rate),
                per_source: own
                    .and_then(|l| l.connection_rate_per_source)
                    .unwrap_or(limits.connection_rate_per_source),
                epoch: Instant::now(),
                window: Mutex::default(),
            },
        }
    }

    /// The identity of a client of this listener with `username`.
    pub fn identity(&self, username: Option<&str>) -> Arc<Identity> {
        match username {
            None => self.anonymous_identity.clone(),
            Some(user) => Arc::new(Identity {
                username: Some(user.into()),
                ..Identity::clone(&self.anonymous_identity)
            }),
        }
    }

    /// Takes a place for a new connection: false when the listener is
    /// full. `release` gives it back.
    pub fn admit(&self) -> bool {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back a place `admit` took.
    pub fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether a new connection from `source` is within the rate limits
    /// (counted if so). The first refusal of each second is logged, with
    /// the number refused since the last one logged.
    pub fn within_rate(&self, source: IpAddr) -> bool {
        let rate = &self.rate;
        if rate.per_listener == 0 && rate.per_source == 0 {
            return true;
        }
        let second = rate.epoch.elapsed().as_secs();
        let mut w = rate.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.second != second {
            w.second = second;
            w.count = 0;
            w.sources.clear();
            w.logged = false;
        }
        let from_source = w.sources.get(&source).copied().unwrap_or(0);
        let why = if rate.per_listener > 0 && w.count >= rate.per_listener {
            Some(format!("{} connections per second", rate.per_listener))
        } else if rate.per_source > 0 && from_source >= rate.per_source {
            Some(format!(
                "{} connections per second from {source}",
                rate.per_source
            ))
        } else {
            None
        };
        let Some(why) = why else {
            w.count += 1;
            if rate.per_source > 0 {
                w.sources.insert(source, from_source + 1);
            }
            return true;
        };
        w.refused += 1;
        if !w.logged {
            // Logged once per second at most.
            w.logged = true;
            tracing::warn!(
                listener = %self.name,
                refused = w.refused,
                "refused: connection rate limit reached ({why}); \
                 raise connection_rate / connection_rate_per_source if this is expected"
            );
            w.refused = 0;
        }
        false
    }
}

/// A TLS listener's current configuration (certificate, key, client CA).
pub(crate) type TlsSlot = Arc<std::sync::RwLock<Arc<ServerConfig>>>;

/// What a listener does to a new connection.
#[derive(Clone)]
pub(crate) enum Wrap {
    Plain,
    Tls(TlsSlot),
    WebSocket {
        tls: Option<TlsSlot>,
        path: Arc<str>,
        /// Allowed `Origin` values; empty: any.
        origins: Arc<[String]>,
    },
}

fn acceptor(slot: &TlsSlot) -> TlsAcceptor {
    let config = slot.read().unwrap_or_else(|e| e.into_inner()).clone();
    TlsAcceptor::from(config)
}

/// Reads `listener`'s certificate files again into `slot`; on an error the
/// old certificate stays.
pub(crate) fn reload(listener: &ListenerConfig, slot: &TlsSlot) -> io::Result<()> {
    let (Some(cert), Some(key)) = (&listener.certfile, &listener.keyfile) else {
        return Ok(());
    };
    let config = server_config(listener, cert, key)?;
    *slot.write().unwrap_or_else(|e| e.into_inner()) = config;
    Ok(())
}

impl std::fmt::Debug for Wrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Builds what `listener` needs, reading its certificate files.
pub(crate) fn wrap(listener: &ListenerConfig) -> io::Result<Wrap> {
    let tls = match (&listener.certfile, &listener.keyfile) {
        (Some(cert), Some(key)) => {
            let config = server_config(listener, cert, key)?;
            Some(Arc::new(std::sync::RwLock::new(config)))
        }
        _ => None,
    };
    Ok(match (listener.protocol, tls) {
        (ListenerProtocol::Mqtt, None) => Wrap::Plain,
        (ListenerProtocol::Mqtt, Some(tls)) => Wrap::Tls(tls),
        (ListenerProtocol::Websocket, tls) => Wrap::WebSocket {
            tls,
            path: listener.path.as_str().into(),
            origins: listener.allowed_origins.clone().into(),
        },
    })
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {e}", path.display()),
    )
}

fn read_certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    match certs.is_empty() {
        true => Err(file_error(path, "no PEM certificate in the file")),
        false => Ok(certs),
    }
}

fn server_config(
    listener: &ListenerConfig,
    cert: &Path,
    key: &Path,
) -> io::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match &listener.cafile {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(ca)? {
                roots.add(cert).map_err(|e| file_error(ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match listener.require_certificate {
                true => verifier.build(),
                false => verifier.allow_unauthenticated().build(),
            }
            .map_err(|e| file_error(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_error(cert, e))?;
    config.alpn_protocols = vec![b"mqtt".to_vec()];
    Ok(Arc::new(config))
}

impl Wrap {
    /// The TLS slot, for reloading.
    pub fn tls(&self) -> Option<&TlsSlot> {
        match self {
            Wrap::Plain => None,
            Wrap::Tls(slot) => Some(slot),
            Wrap::WebSocket { tls, .. } => tls.as_ref(),
        }
    }

    /// For the start-up log and errors.
    pub fn describe(&self) -> String {
        match self {
            Wrap::Plain => "MQTT".into(),
            Wrap::Tls(_) => "MQTT over TLS".into(),
            Wrap::WebSocket {
                tls: None, path, ..
            } => format!("MQTT over WebSocket at {path}"),
            Wrap::WebSocket {
                tls: Some(_), path, ..
            } => {
                format!("MQTT over WebSocket with TLS at {path}")
            }
        }
    }

    /// Turns an accepted connection into the stream MQTT runs on: the
    /// PROXY header if the listener expects one, then TLS and WebSocket.
    pub async fn handshake(
        &self,
        mut tcp: TcpStream,
        shared: &Shared,
        listener: &Listener,
    ) -> io::Result<Stream> {
        let _ = tcp.set_nodelay(true);
        let mut peer = tcp.peer_addr().ok();
        let max = usize::try_from(shared.config.limits.max_packet_size).unwrap_or(usize::MAX);
        let limit = Duration::from_millis(shared.config.limits.handshake_timeout_ms);
        let done = tokio::time::timeout(limit, async {
            if listener.proxy {
                let header = crate::proxy::read_header(&mut tcp)
                    .await
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                peer = header.source.or(peer);
                let source = peer.map(|p| p.ip());
                if source.is_some_and(|ip| !listener.within_rate(ip)) {
                    return Err(io::Error::other("over the connection rate limit"));
                }
            }
            let identity =
                |tls: &tokio_rustls::server::TlsStream<_>| -> io::Result<Option<String>> {
                    if !listener.identity_as_username {
                        return Ok(None);
                    }
                    let (_, connection) = tokio_rustls::server::TlsStream::get_ref(tls);
                    let cert = connection.peer_certificates().and_then(|c| c.first());
                    let cert = cert.ok_or_else(|| io::Error::other("no client certificate"))?;
                    cert_identity(cert).map(Some).map_err(|e| {
                        tracing::info!(peer = ?peer, listener = %listener.name, "refused: {e}");
                        io::Error::new(io::ErrorKind::PermissionDenied, e)
                    })
                };
            match self {
                Wrap::Plain if listener.proxy => Ok(Stream::other(tcp, peer)),
                Wrap::Plain => Ok(Stream::Tcp(tcp)),
                Wrap::Tls(slot) => {
                    let tls = acceptor(slot).accept(tcp).await?;
                    let id = identity(&tls)?;
                    Ok(Stream::other(tls, peer).with_identity(id))
                }
                Wrap::WebSocket {
                    tls: None,
                    path,
                    origins,
                } => {
                    let ws = upgrade(tcp, path, origins, max).await?;
                    Ok(Stream::other(ws, peer))
                }
                Wrap::WebSocket {
                    tls: Some(slot),
                    path,
                    origins,
                } => {
                    let tls = acceptor(slot).accept(tcp).await?;
                    let id = identity(&tls)?;
                    let ws = upgrade(tls, path, origins, max).await?;
                    Ok(Stream::other(ws, peer).with_identity(id))
                }
            }
        })
        .await;
        done.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }
}

/// The user name a client certificate stands for: its one Common Name,
/// else its first DNS or e-mail Subject Alternative Name (catalogue TL6:
/// none, two Common Names, or one that is not UTF-8 is refused).
pub(crate) fn cert_identity(der: &[u8]) -> Result<String, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("client certificate cannot be parsed: {e}"))?;
    let names: Vec<_> = cert.subject().iter_common_name().collect();
    match names.as_slice() {
        [one] => {
            return match one.as_str() {
                Ok("") => Err("client certificate's Common Name is empty".into()),
                Ok(name) => Ok(name.to_owned()),
                Err(_) => Err("client certificate's Common Name is not UTF-8".into()),
            };
        }
        [] => {}
        _ => return Err("client certificate has more than one Common Name".into()),
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|e| format!("client certificate's Subject Alternative Name is bad: {e}"))?;
    san.into_iter()
        .flat_map(|san| san.value.general_names.iter())
        .find_map(|name| match name {
            GeneralName::DNSName(n) | GeneralName::RFC822Name(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| {
            "client certificate has no Common Name or DNS/e-mail name to use as user name".into()
        })
}

/// The WebSocket upgrade: the path must match; the subprotocol chosen is
/// `mqtt` (or `mqttv3.1`, which older clients offer) [MQTT-6.0.0-4].
// tungstenite fixes the callback's error type (an HTTP response).
#[allow(clippy::result_large_err)]
async fn upgrade<S>(io: S, path: &str, origins: &[String], max_packet: usize) -> io::Result<WsIo<S>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let check = |request: &Request, mut response: Response| {
        if request.uri().path() != path {
            let mut refusal =
                ErrorResponse::new(Some(format!("no MQTT endpoint here; try {path}")));
            *refusal.status_mut() = StatusCode::NOT_FOUND;
            return Err(refusal);
        }
        // Catalogue W8: a browser page from elsewhere.
        let origin = request.headers().get("origin").map(|o| o.to_str());
        let foreign = match origin {
            Some(Ok(o)) => !origins.is_empty() && !origins.iter().any(|a| a == o),
            Some(Err(_)) => !origins.is_empty(),
            None => false,
        };
        if foreign {
            let mut refusal = ErrorResponse::new(Some("this Origin may not connect".into()));
            *refusal.status_mut() = StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let offered = request
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|p| *p == "mqtt" || *p == "mqttv3.1")
            .map(str::to_owned);
        if let Some(protocol) = offered {
            if let Ok(value) = HeaderValue::from_str(&protocol) {
                response
                    .headers_mut()
                    .insert("sec-websocket-protocol", value);
            }
        }
        Ok(response)
    };
    // A whole MQTT packet (and its fixed header) fits in one message.
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_packet + 8))
        .max_frame_size(Some(max_packet + 8));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(io, check, Some(config))
        .await
        .map_err(io::Error::other)?;
    Ok(WsIo::new(ws))
}
