//! What a connection reads from and writes to: plain TCP, or any other
//! byte stream (TLS, WebSocket, WebSocket over TLS) that a listener hands
//! over after its handshake.
//!
//! The connection code waits for readiness and then reads what is there
//! (`poll_read_ready` + `try_read_buf`), so an idle TCP connection holds no
//! read buffer. A TLS or WebSocket stream has no readiness of its own: for
//! those, waiting for readiness reads into a small pending buffer, and the
//! next "try" read takes from it. Plain TCP keeps its exact old path; the
//! other kinds are boxed so they do not grow every idle TCP connection.
//!
//! Over WebSocket, MQTT packets travel in binary frames [MQTT-6.0.0-1]; a
//! frame may carry part of a packet or several [MQTT-6.0.0-2], so frames
//! are only a byte stream here. A text frame ends the connection.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::{Sink, Stream as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Anything a connection can read and write.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A client's connection.
#[derive(Debug)]
pub(crate) enum Stream {
    Tcp(TcpStream),
    Other(Box<Other>),
}

/// A stream after a TLS or WebSocket handshake.
pub(crate) struct Other {
    io: Box<dyn Io>,
    /// Read while waiting for readiness, not yet taken.
    pending: BytesMut,
    /// The peer closed its side.
    eof: bool,
    peer: Option<SocketAddr>,
    /// The client certificate's identity, when the listener uses it as
    /// the user name.
    identity: Option<Box<str>>,
}

impl std::fmt::Debug for Other {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Other").field("peer", &self.peer).finish()
    }
}

/// Bytes read at a time from a TLS or WebSocket stream.
const OTHER_READ: usize = 4096;

impl Stream {
    /// A stream that went through a handshake on a connection from `peer`.
    pub fn other(io: impl Io + 'static, peer: Option<SocketAddr>) -> Stream {
        Stream::Other(Box::new(Other {
            io: Box::new(io),
            pending: BytesMut::new(),
            eof: false,
            peer,
            identity: None,
        }))
    }

    /// The same, with the identity from the client's certificate.
    pub fn with_identity(mut self, identity: Option<String>) -> Stream {
        if let Stream::Other(o) = &mut self {
            o.identity = identity.map(Into::into);
        }
        self
    }

    /// The client certificate's identity, if the listener took one.
    pub fn cert_identity(&self) -> Option<&str> {
        match self {
            Stream::Tcp(_) => None,
            Stream::Other(o) => o.identity.as_deref(),
        }
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr(),
            Stream::Other(o) => o.peer.ok_or_else(|| io::ErrorKind::NotConnected.into()),
        }
    }

    /// Ready when a read may find something.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Other(o) => {
                if !o.pending.is_empty() || o.eof {
                    return Poll::Ready(Ok(()));
                }
                let mut chunk = [0u8; OTHER_READ];
                let mut buf = ReadBuf::new(&mut chunk);
                ready!(Pin::new(&mut o.io).poll_read(cx, &mut buf))?;
                match buf.filled() {
                    [] => o.eof = true,
                    filled => o.pending.extend_from_slice(filled),
                }
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Reads what is there without waiting: `WouldBlock` if nothing.
    pub fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.try_read_buf(buf),
            Stream::Other(o) => {
                if o.pending.is_empty() {
                    return match o.eof {
                        true => Ok(0),
                        false => Err(io::ErrorKind::WouldBlock.into()),
                    };
                }
                let n = o.pending.len();
                buf.extend_from_slice(&o.pending);
                o.pending.clear();
                if o.pending.capacity() > 4 * OTHER_READ {
                    o.pending = BytesMut::new();
                }
                Ok(n)
            }
        }
    }

    /// Writes some of `slices`, as `poll_write_vectored`.
    pub fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        slices: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, slices),
            Stream::Other(o) => Pin::new(&mut o.io).poll_write_vectored(cx, slices),
        }
    }

    /// Pushes out what TLS or WebSocket buffered (nothing to do for TCP).
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(_) => Poll::Ready(Ok(())),
            Stream::Other(o) => Pin::new(&mut o.io).poll_flush(cx),
        }
    }
}

/// A WebSocket connection as a byte stream: binary frames in, one binary
/// frame per write out.
pub(crate) struct WsIo<S> {
    ws: WebSocketStream<S>,
    /// The rest of the frame being read.
    frame: Bytes,
}

impl<S> WsIo<S> {
    pub fn new(ws: WebSocketStream<S>) -> WsIo<S> {
        WsIo {
            ws,
            frame: Bytes::new(),
        }
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.frame.is_empty() {
                let n = self.frame.len().min(buf.remaining());
                let taken = self.frame.split_to(n);
                buf.put_slice(&taken);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut self.ws).poll_next(cx)) {
                Some(Ok(Message::Binary(data))) => self.frame = data,
                Some(Ok(Message::Text(_))) => {
                    // [MQTT-6.0.0-1]: anything but binary closes the connection.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket text frame (MQTT travels in binary frames)",
                    )));
                }
                Some(Ok(Message::Close(_))) | None => return Poll::Ready(Ok(())),
                // Pings are answered by tungstenite; pongs and raw frames
                // carry nothing for MQTT.
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Poll::Ready(Err(ws_error(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
        let frame = Message::Binary(Bytes::copy_from_slice(data));
        Pin::new(&mut self.ws).start_send(frame).map_err(ws_error)?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(ws_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_connections_do_not_pay_for_the_other_transports() {
        // Every idle connection holds one of these (issue 3: ≤ 2 KiB each).
        assert!(
            std::mem::size_of::<Stream>() <= std::mem::size_of::<TcpStream>() + 8,
            "Stream {} bytes, TcpStream {}",
            std::mem::size_of::<Stream>(),
            std::mem::size_of::<TcpStream>()
        );
    }
}
