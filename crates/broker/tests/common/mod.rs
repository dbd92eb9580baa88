//! A broker on 127.0.0.1:0 and a raw MQTT client that speaks packets
//! through the Pigeon codec, so tests assert exact packets on the wire.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use pigeon_broker::{Broker, Config};
use pigeon_proto::codec::{Connect, Publish, Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a packet that should come.
pub const WAIT: Duration = Duration::from_secs(5);

/// A broker on a free loopback port, with `$SYS` off.
pub async fn broker() -> Broker {
    broker_with(|_| {}).await
}

/// A broker with a changed configuration.
pub async fn broker_with(change: impl FnOnce(&mut Config)) -> Broker {
    let mut config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval: 0,
        durability: pigeon_broker::Durability::Memory,
        ..Config::default()
    };
    change(&mut config);
    Broker::start(config).await.unwrap()
}

/// A client speaking raw packets.
pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
    pub protocol: Protocol,
}

pub fn connect_packet(protocol: Protocol, id: &str, clean: bool) -> Connect {
    let mut c = Connect::new(protocol, id.try_into().unwrap());
    c.clean_start = clean;
    c
}

pub fn publish(topic: &str, payload: &[u8], qos: QoS, id: u16) -> Publish {
    let mut p = Publish::new(TopicName::try_from(topic).unwrap(), payload.to_vec());
    p.qos = qos;
    p.packet_id = PacketId::new(id);
    p
}

pub fn subscribe(id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: PacketId::new(id).unwrap(),
        properties: Default::default(),
        filters: filters
            .iter()
            .map(|(f, qos)| SubscribeFilter {
                filter: (*f).try_into().unwrap(),
                options: SubscriptionOptions {
                    qos: *qos,
                    ..Default::default()
                },
            })
            .collect(),
    })
}

impl Raw {
    /// Opens a TCP connection without sending anything.
    pub async fn open(broker: &Broker, protocol: Protocol) -> Raw {
        let stream = TcpStream::connect(broker.local_addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
            protocol,
        }
    }

    /// Connects with `connect` and returns the CONNACK.
    pub async fn connect_with(broker: &Broker, connect: Connect) -> (Raw, Packet) {
        let mut raw = Raw::open(broker, connect.protocol).await;
        raw.send(Packet::Connect(Box::new(connect))).await;
        let connack = raw.recv().await.expect("CONNACK");
        (raw, connack)
    }

    /// Connects (clean start) and asserts success.
    pub async fn connect(broker: &Broker, protocol: Protocol, id: &str) -> Raw {
        let (raw, connack) = Raw::connect_with(broker, connect_packet(protocol, id, true)).await;
        assert!(
            matches!(connack, Packet::ConnAck(ref c) if !c.reason_code.is_error()),
            "{connack:?}"
        );
        raw
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.encode(self.protocol, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or `None` if the broker closed the connection.
    /// Panics if nothing comes within [`WAIT`].
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, self.read_packet())
            .await
            .expect("a packet or a close in time")
    }

    /// The next packet if one comes within `wait`.
    pub async fn recv_within(&mut self, wait: Duration) -> Option<Packet> {
        tokio::time::timeout(wait, self.read_packet())
            .await
            .ok()
            .flatten()
    }

    async fn read_packet(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = decode(&mut self.buf, self.protocol, u32::MAX).unwrap() {
                return Some(packet);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Asserts the broker closes the connection (after any packets, which
    /// are returned).
    pub async fn closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(p) = self.recv().await {
            seen.push(p);
        }
        seen
    }
}

/// The PUBLISH in `packet`, or a panic naming what came instead.
pub fn expect_publish(packet: Option<Packet>) -> Publish {
    match packet {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}
