//! What the load generators share: a minimal MQTT 3.1.1 connection over
//! the Pigeon codec.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::BytesMut;
use pigeon_proto::codec::Connect;
use pigeon_proto::{decode, Packet, Protocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The protocol the load generators speak.
pub const V: Protocol = Protocol::V3_1_1;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub struct Conn {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub out: BytesMut,
}

impl Conn {
    pub async fn open(addr: SocketAddr, id: &str, clean: bool) -> Res<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut c = Conn {
            stream,
            buf: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
        };
        let mut connect = Connect::new(V, id.try_into()?);
        connect.clean_start = clean;
        c.send(Packet::Connect(Box::new(connect))).await?;
        match c.recv().await? {
            Packet::ConnAck(a) if !a.reason_code.is_error() => Ok(c),
            other => Err(format!("connect refused: {other:?}").into()),
        }
    }

    pub async fn send(&mut self, p: Packet) -> Res<()> {
        p.encode(V, &mut self.out)?;
        self.flush().await
    }

    pub async fn flush(&mut self) -> Res<()> {
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    pub async fn recv(&mut self) -> Res<Packet> {
        loop {
            if let Some(p) = decode(&mut self.buf, V, u32::MAX)? {
                return Ok(p);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err("connection closed".into());
            }
        }
    }
}
