//! The byte stream under MQTT: TCP, TLS (rustls), WebSocket or WebSocket
//! over TLS (tokio-tungstenite), chosen by `Options::transport`.
//!
//! Over WebSocket, MQTT packets travel in binary frames with the `mqtt`
//! subprotocol [MQTT-6.0.0-1]; a frame may carry part of a packet or
//! several, so frames are appended to the same read buffer the TCP path
//! uses. A text frame closes the connection, as the specification asks.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::asynchronous::ClientError;
use crate::options::{Options, TlsOptions};

/// Anything a connection can read and write.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection to the broker.
pub(crate) enum Stream {
    /// TCP or TLS: MQTT bytes as they are.
    Plain(Box<dyn Io>),
    /// WebSocket (over TCP or TLS): MQTT bytes in binary frames.
    WebSocket(Box<WebSocketStream<Box<dyn Io>>>),
}

/// The largest MQTT packet (256 MiB and its fixed header) fits in one
/// WebSocket message.
const MAX_WS_MESSAGE: usize = 268_435_460;

impl Stream {
    /// Appends what arrives to `buf`; `Ok(0)` when the broker closed the
    /// connection. Cancel-safe: nothing read is lost if the future is
    /// dropped.
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Plain(io) => io.read_buf(buf).await,
            Stream::WebSocket(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    Some(Ok(Message::Text(_))) => {
                        // [MQTT-6.0.0-1]: only binary frames carry MQTT.
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "the broker sent a WebSocket text frame",
                        ));
                    }
                    // Ping (answered by tungstenite), pong, empty frames.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    /// Writes all of `data` and empties it.
    pub async fn write_all(&mut self, data: &mut BytesMut) -> io::Result<()> {
        match self {
            Stream::Plain(io) => {
                io.write_all(data).await?;
                data.clear();
                Ok(())
            }
            Stream::WebSocket(ws) => {
                let frame = Message::Binary(data.split().freeze());
                ws.send(frame).await.map_err(io::Error::other)
            }
        }
    }

    /// Closes the connection politely.
    pub async fn shutdown(&mut self) {
        match self {
            Stream::Plain(io) => {
                let _ = io.shutdown().await;
            }
            Stream::WebSocket(ws) => {
                let _ = WebSocketStream::close(ws, None).await;
            }
        }
    }
}

/// Opens a connection to the broker `options` name, over their transport.
/// `tls` is the configuration `tls_config` made (for the TLS transports).
pub(crate) async fn connect(
    options: &Options,
    tls: Option<&Arc<ClientConfig>>,
) -> Result<Stream, ClientError> {
    let address = options.address();
    let unreachable = |why: String| ClientError::Unreachable {
        address: address.clone(),
        why,
    };
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let io: Box<dyn Io> = match (options.transport.is_tls(), tls) {
        (false, _) => Box::new(tcp),
        (true, None) => return Err(ClientError::Tls("no TLS configuration".into())),
        (true, Some(config)) => {
            let name = options.tls.server_name.as_deref().unwrap_or(&options.host);
            let name = ServerName::try_from(name.to_owned())
                .map_err(|_| ClientError::Tls(format!("{name:?} is not a valid server name")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::Tls(format!("{address}: {e}")))?;
            Box::new(stream)
        }
    };
    if !options.transport.is_websocket() {
        return Ok(Stream::Plain(io));
    }
    let request = ws_request(options)?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_WS_MESSAGE))
        .max_frame_size(Some(MAX_WS_MESSAGE));
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, io, Some(config))
        .await
        .map_err(|e| ClientError::WebSocket(format!("{address}{}: {e}", options.ws_path)))?;
    Ok(Stream::WebSocket(Box::new(ws)))
}

/// The WebSocket upgrade request: the path, subprotocol `mqtt`, and the
/// application's headers.
fn ws_request(options: &Options) -> Result<Request, ClientError> {
    let scheme = match options.transport.is_tls() {
        true => "wss",
        false => "ws",
    };
    let path = match options.ws_path.starts_with('/') {
        true => options.ws_path.clone(),
        false => format!("/{}", options.ws_path),
    };
    let url = format!("{scheme}://{}{path}", options.address());
    let bad = |e: &dyn std::fmt::Display| ClientError::WebSocket(format!("{url}: {e}"));
    let mut request = url.as_str().into_client_request().map_err(|e| bad(&e))?;
    let headers = request.headers_mut();
    headers.insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    for (name, value) in &options.ws_headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| bad(&e))?;
        let value = HeaderValue::from_str(value).map_err(|e| bad(&e))?;
        headers.insert(name, value);
    }
    Ok(request)
}

/// Builds the TLS configuration once, when the client starts, so a missing
/// or unreadable file is reported at once rather than on every attempt.
pub(crate) fn tls_config(tls: &TlsOptions) -> Result<Arc<ClientConfig>, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let files: Vec<std::path::PathBuf> = tls.ca_file.iter().cloned().collect();
    if let Some(dir) = &tls.ca_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| file_error(dir, e))?;
        let mut found: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        found.sort();
        // Other files in the directory (keys, hash links' targets twice)
        // are skipped; at least one must hold a certificate.
        let before = roots.len();
        for path in &found {
            for cert in read_certs(path).unwrap_or_default() {
                let _ = roots.add(cert);
            }
        }
        if roots.len() == before {
            return Err(file_error(dir, "no PEM certificate in the directory"));
        }
    }
    for path in &files {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| file_error(path, e))?;
        }
    }
    if files.is_empty() && tls.ca_dir.is_none() {
        // Unreadable system certificates are skipped, as browsers do.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(ClientError::Tls(
                "no system root certificates found: install ca-certificates or give a CA file"
                    .into(),
            ));
        }
    }
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match tls.versions.is_empty() {
        true => rustls::DEFAULT_VERSIONS.to_vec(),
        false => tls
            .versions
            .iter()
            .map(|v| match v {
                crate::options::TlsVersion::Tls12 => &rustls::version::TLS12,
                crate::options::TlsVersion::Tls13 => &rustls::version::TLS13,
            })
            .collect(),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| ClientError::Tls(e.to_string()))?;
    let builder = match tls.insecure {
        true => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyName(verifier))),
        false => builder.with_webpki_verifier(verifier),
    };
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Tls(format!("client certificate: {e}")))?
        }
    };
    config.alpn_protocols = tls.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

fn file_error(path: &std::path::Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Tls(format!("{}: {e}", path.display()))
}

/// The certificates of a PEM file; an error if it holds none.
fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    match certs.is_empty() {
        true => Err(file_error(path, "no PEM certificate in the file")),
        false => Ok(certs),
    }
}

/// `TlsOptions::insecure`: the chain is verified as usual, only a name
/// mismatch is let through.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
        match verified {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
