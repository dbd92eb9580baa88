//! The tokio client: a cloneable [`AsyncClient`] handle and the stream of
//! [`Event`]s its connection produces.
//!
//! `AsyncClient::new` starts one task that owns the connection (see
//! `driver`). Requests go to it over an unbounded channel, so a handle
//! never waits for the connection, and code reacting to an event may
//! publish or subscribe without deadlock. Events come back over a bounded
//! channel: an application that stops reading them slows the connection
//! down rather than letting memory grow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use pigeon_proto::codec::{ConnAck, Publish, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::properties::Properties;
use pigeon_proto::topic::TopicName;
use pigeon_proto::{QoS, ReasonCode};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{self, Command};
use crate::options::Options;
use crate::store::SessionStore;

/// Identifies one request (publish, subscribe, unsubscribe) of a client,
/// as paho's `mid`: events about it carry the same id.
pub type MessageId = u64;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client was disconnected on request, or its connection task ended.
    #[error("the client is disconnected")]
    Disconnected,
    /// More messages are waiting than `Options::max_queued` allows.
    #[error("too many messages waiting to be sent (Options::max_queued)")]
    QueueFull,
    /// A topic or filter the protocol does not allow.
    #[error("invalid topic or filter: {0}")]
    InvalidTopic(String),
    /// The broker refused the connection.
    #[error("the broker refused the connection: {0}")]
    Refused(ReasonCode),
    /// The broker could not be reached.
    #[error("cannot connect to {address}: {why}")]
    Unreachable {
        /// `host:port`.
        address: String,
        /// The system's reason.
        why: String,
    },
    /// TLS could not be set up (a certificate or key file) or its handshake
    /// failed (the broker's certificate is not trusted, …).
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket upgrade failed (wrong path, not a WebSocket server, …).
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// The session store could not be opened, read or written.
    #[error("session store: {0}")]
    Store(String),
    /// The message is larger than the broker accepts.
    #[error("the message is larger than the broker accepts ({size} > {max} bytes)")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The broker's Maximum Packet Size.
        max: u32,
    },
}

/// What the connection tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// CONNACK with a success code: connected (again).
    Connected {
        /// The broker kept the session (and resumes what was in flight).
        session_present: bool,
        /// The whole CONNACK, for its v5 properties.
        connack: Box<ConnAck>,
    },
    /// A connection attempt failed; the client retries if reconnection is on.
    ConnectFailed(ClientError),
    /// A message arrived. With manual acknowledgements, `AsyncClient::ack`
    /// it once processed.
    Message(Box<Message>),
    /// A published message is complete for its QoS: written (QoS 0),
    /// PUBACK (QoS 1) or PUBCOMP / an error PUBREC (QoS 2).
    Published {
        /// The request.
        mid: MessageId,
        /// The broker's reason code (Success in 3.x).
        reason_code: ReasonCode,
    },
    /// SUBACK.
    Subscribed {
        /// The request.
        mid: MessageId,
        /// One per filter: the granted QoS or a failure.
        reason_codes: Vec<ReasonCode>,
    },
    /// UNSUBACK.
    Unsubscribed {
        /// The request.
        mid: MessageId,
        /// One per filter (v5; empty in 3.x).
        reason_codes: Vec<ReasonCode>,
    },
    /// A packet sent ("Sending …") or received ("Received …"), with
    /// `Options::log_packets`. A SUBSCRIBE or UNSUBSCRIBE with several
    /// filters gives a line per filter, joined by newlines.
    Log(String),
    /// The connection ended.
    Disconnected {
        /// The broker's DISCONNECT reason (v5), or the client's own
        /// (Success when `disconnect` was called); `None` when the network
        /// connection was lost.
        reason_code: Option<ReasonCode>,
        /// Whether the client will try to reconnect.
        reconnecting: bool,
    },
}

/// A message received: the PUBLISH (topic, payload, QoS, properties, all
/// reachable through `Deref`), and with a session store its place in the
/// store's inbox (paho's `MQTTMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The message as the broker sent it.
    pub publish: Publish,
    /// With a session store, for QoS 1/2: the message's delivery number.
    /// Numbers only grow, across restarts too, and a message delivered
    /// again keeps its number. An application that must act on each
    /// message exactly once stores the last number it acted on together
    /// with its results, and skips a message whose number is not above it.
    pub delivery: Option<u64>,
    /// Delivered before to this client's application, which did not
    /// acknowledge it (the process stopped first): the session store gives
    /// it again after a restart.
    pub redelivered: bool,
}

impl std::ops::Deref for Message {
    type Target = Publish;

    fn deref(&self) -> &Publish {
        &self.publish
    }
}

impl Message {
    pub(crate) fn new(publish: Publish) -> Message {
        Message {
            publish,
            delivery: None,
            redelivered: false,
        }
    }
}

/// Events of one client, in order.
#[derive(Debug)]
pub struct Events(pub(crate) mpsc::Receiver<Event>);

impl Events {
    /// The next event; `None` once the client has stopped for good.
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// The next event, blocking the thread (not for use inside a runtime).
    pub fn blocking_recv(&mut self) -> Option<Event> {
        self.0.blocking_recv()
    }
}

/// A publish in progress: its id now, its completion later.
#[derive(Debug)]
pub struct Publication {
    mid: MessageId,
    done: oneshot::Receiver<Result<ReasonCode, ClientError>>,
}

impl Publication {
    /// Its id (as in `Event::Published`).
    pub fn mid(&self) -> MessageId {
        self.mid
    }

    /// Waits until the message is complete for its QoS; the broker's
    /// reason code (an error code if it refused the message).
    pub async fn wait(self) -> Result<ReasonCode, ClientError> {
        self.done.await.unwrap_or(Err(ClientError::Disconnected))
    }

    /// The result if it is complete already.
    pub fn try_result(&mut self) -> Option<Result<ReasonCode, ClientError>> {
        match self.done.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(ClientError::Disconnected)),
        }
    }

    pub(crate) fn split(
        self,
    ) -> (
        MessageId,
        oneshot::Receiver<Result<ReasonCode, ClientError>>,
    ) {
        (self.mid, self.done)
    }
}

/// A SUBSCRIBE or UNSUBSCRIBE sent: its id, and its answer to come.
pub(crate) type Pending = (
    MessageId,
    oneshot::Receiver<Result<Vec<ReasonCode>, ClientError>>,
);

/// A topic filter as the protocol's string, or why it cannot be one.
fn mqtt_str(filter: &str) -> Result<pigeon_proto::string::MqttStr, ClientError> {
    filter
        .try_into()
        .map_err(|e: pigeon_proto::string::StringError| ClientError::InvalidTopic(e.to_string()))
}

/// A handle to one MQTT client connection; clones share it.
#[derive(Debug, Clone)]
pub struct AsyncClient {
    commands: mpsc::UnboundedSender<Command>,
    next_mid: Arc<AtomicU64>,
    /// With `Options::session_store`: QoS 1/2 messages are recorded here
    /// before `publish` accepts them. The connection task owns the store:
    /// once it stops, the file is closed (another client may open it) and
    /// publishing fails.
    store: Option<std::sync::Weak<SessionStore>>,
}

/// Events the connection may hold for an application that is slow to read
/// them before it stops reading from the broker.
const EVENT_BUFFER: usize = 1024;

impl AsyncClient {
    /// Starts a client on the current tokio runtime: it connects in the
    /// background (see `Event::Connected`) and reconnects as `options` say.
    ///
    /// With `Options::session_store`, the store is opened first, and with
    /// TLS its certificate files are read; if either fails, the only event
    /// is `ConnectFailed` (`ClientError::Store` or `ClientError::Tls`).
    pub fn new(options: Options) -> (AsyncClient, Events) {
        let (commands, rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(EVENT_BUFFER);
        let tls = match options.transport.is_tls() {
            true => crate::transport::tls_config(&options.tls).map(Some),
            false => Ok(None),
        };
        let opened = match (&tls, options.session_store.as_deref()) {
            (Err(e), _) => Some(Err(e.clone())),
            (Ok(_), path) => path.map(SessionStore::open),
        };
        let (store, saved) = match opened {
            None => (None, None),
            Some(Ok((store, saved))) => (Some(store), Some(saved)),
            Some(Err(e)) => {
                let _ = events.try_send(Event::ConnectFailed(e));
                drop(events);
                let client = AsyncClient {
                    commands,
                    next_mid: Arc::new(AtomicU64::new(1)),
                    store: None,
                };
                return (client, Events(events_rx));
            }
        };
        let tls = tls.ok().flatten();
        let weak = store.as_ref().map(Arc::downgrade);
        tokio::spawn(driver::run(options, tls, rx, events, store, saved));
        let client = AsyncClient {
            commands,
            next_mid: Arc::new(AtomicU64::new(1)),
            store: weak,
        };
        (client, Events(events_rx))
    }

    fn mid(&self) -> MessageId {
        self.next_mid.fetch_add(1, Ordering::Relaxed)
    }

    fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .map_err(|_| ClientError::Disconnected)
    }

    /// Publishes and waits until the message is complete for its QoS.
    pub async fn publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> Result<ReasonCode, ClientError> {
        self.start_publish(topic, qos, retain, payload)?
            .wait()
            .await
    }

    /// Publishes without waiting: the returned [`Publication`] completes
    /// later. Fails at once only for a bad topic or a stopped client.
    pub fn start_publish(
        &self,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: impl Into<Bytes>,
    ) -> Result<Publication, ClientError> {
        let topic =
            TopicName::try_from(topic).map_err(|e| ClientError::InvalidTopic(e.to_string()))?;
        let mut message = Publish::new(topic, payload.into());
        message.qos = qos;
        message.retain = retain;
        self.publish_message(message)
    }

    /// Publishes a message built by the caller (v5 properties and all).
    ///
    /// With a session store, a QoS 1/2 message is on disk when this
    /// returns (it waits for the write).
    pub fn publish_message(&self, message: Publish) -> Result<Publication, ClientError> {
        let mid = self.mid();
        let (done, rx) = oneshot::channel();
        let seq = match (&self.store, message.qos) {
            (Some(store), QoS::AtLeastOnce | QoS::ExactlyOnce) => {
                let store = store.upgrade().ok_or(ClientError::Disconnected)?;
                Some(store.accept(&message)?)
            }
            _ => None,
        };
        self.send(Command::Publish {
            mid,
            message: Box::new(message),
            done: Some(done),
            seq,
        })?;
        Ok(Publication { mid, done: rx })
    }

    /// Subscribes to `filter` and waits for the SUBACK: the granted QoS
    /// (or a failure code) per filter.
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<Vec<ReasonCode>, ClientError> {
        let options = SubscriptionOptions {
            qos,
            ..Default::default()
        };
        self.subscribe_many(&[(filter, options)], Properties::default())
            .await
    }

    /// Subscribes to several filters in one SUBSCRIBE.
    pub async fn subscribe_many(
        &self,
        filters: &[(&str, SubscriptionOptions)],
        properties: Properties,
    ) -> Result<Vec<ReasonCode>, ClientError> {
        let (mid, rx) = self.start_subscribe(filters, properties)?;
        let _ = mid;
        rx.await.unwrap_or(Err(ClientError::Disconnected))
    }

    pub(crate) fn start_subscribe(
        &self,
        filters: &[(&str, SubscriptionOptions)],
        properties: Properties,
    ) -> Result<Pending, ClientError> {
        let filters = filters
            .iter()
            .map(|(f, options)| {
                Ok(SubscribeFilter {
                    filter: mqtt_str(f)?,
                    options: *options,
                })
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let mid = self.mid();
        let (done, rx) = oneshot::channel();
        self.send(Command::Subscribe {
            mid,
            filters,
            properties: Box::new(properties),
            done: Some(done),
        })?;
        Ok((mid, rx))
    }

    /// Unsubscribes from `filter` and waits for the UNSUBACK.
    pub async fn unsubscribe(&self, filter: &str) -> Result<Vec<ReasonCode>, ClientError> {
        let (_, rx) = self.start_unsubscribe(&[filter])?;
        rx.await.unwrap_or(Err(ClientError::Disconnected))
    }

    pub(crate) fn start_unsubscribe(&self, filters: &[&str]) -> Result<Pending, ClientError> {
        let filters = filters
            .iter()
            .map(|f| mqtt_str(f))
            .collect::<Result<Vec<_>, ClientError>>()?;
        let mid = self.mid();
        let (done, rx) = oneshot::channel();
        self.send(Command::Unsubscribe {
            mid,
            filters,
            done: Some(done),
        })?;
        Ok((mid, rx))
    }

    /// Acknowledges a message received with manual acknowledgements on
    /// (`Options::manual_acks`); other messages need nothing. Without a
    /// session store this sends the PUBACK / PUBREC; with one, the broker
    /// was answered once the message was in the store's inbox, and this
    /// takes it out (it is not delivered again after a restart).
    pub fn ack(&self, message: &Message) -> Result<(), ClientError> {
        match (message.packet_id, message.delivery) {
            (None, None) => Ok(()),
            (packet_id, delivery) => self.send(Command::Ack {
                packet_id,
                delivery,
            }),
        }
    }

    /// Sends DISCONNECT (no will) and stops; waits until the connection is
    /// closed. Messages still queued are not sent.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Disconnect {
            reason_code: ReasonCode::SUCCESS,
            done: Some(done),
        })?;
        let _ = rx.await;
        Ok(())
    }

    pub(crate) fn start_disconnect(&self) -> Result<oneshot::Receiver<()>, ClientError> {
        let (done, rx) = oneshot::channel();
        self.send(Command::Disconnect {
            reason_code: ReasonCode::SUCCESS,
            done: Some(done),
        })?;
        Ok(rx)
    }
}
