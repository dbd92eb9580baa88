//! The `[[listeners]]` of the configuration: what each does to an accepted
//! TCP connection before MQTT starts. Plain MQTT starts at once; TLS runs
//! the rustls handshake (TLS 1.2/1.3, ALPN `mqtt`, client certificates
//! checked against `cafile` when configured); WebSocket runs the HTTP
//! upgrade at the configured path with subprotocol `mqtt` (or `mqttv3.1`),
//! over TLS for WSS. Handshakes are bounded in time and run in the
//! connection's own task. A TLS listener's certificate and key are held
//! in a slot that `reload` (SIGHUP) replaces: new connections get the new
//! certificate, open ones keep theirs.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::broker::Shared;
use crate::config::{ListenerConfig, ListenerProtocol};
use crate::transport::{Stream, WsIo};

/// How long a client may take over its TLS or WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
            Wrap::WebSocket { tls: None, path } => format!("MQTT over WebSocket at {path}"),
            Wrap::WebSocket { tls: Some(_), path } => {
                format!("MQTT over WebSocket with TLS at {path}")
            }
        }
    }

    /// Turns an accepted connection into the stream MQTT runs on.
    pub async fn handshake(&self, tcp: TcpStream, shared: &Shared) -> io::Result<Stream> {
        let _ = tcp.set_nodelay(true);
        let peer = tcp.peer_addr().ok();
        let max = usize::try_from(shared.config.limits.max_packet_size).unwrap_or(usize::MAX);
        let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            match self {
                Wrap::Plain => Ok(Stream::Tcp(tcp)),
                Wrap::Tls(slot) => {
                    let tls = acceptor(slot).accept(tcp).await?;
                    Ok(Stream::other(tls, peer))
                }
                Wrap::WebSocket { tls: None, path } => {
                    let ws = upgrade(tcp, path, max).await?;
                    Ok(Stream::other(ws, peer))
                }
                Wrap::WebSocket {
                    tls: Some(slot),
                    path,
                } => {
                    let tls = acceptor(slot).accept(tcp).await?;
                    let ws = upgrade(tls, path, max).await?;
                    Ok(Stream::other(ws, peer))
                }
            }
        })
        .await;
        done.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    }
}

/// The WebSocket upgrade: the path must match; the subprotocol chosen is
/// `mqtt` (or `mqttv3.1`, which older clients offer) [MQTT-6.0.0-4].
// tungstenite fixes the callback's error type (an HTTP response).
#[allow(clippy::result_large_err)]
async fn upgrade<S>(io: S, path: &str, max_packet: usize) -> io::Result<WsIo<S>>
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
