//! The per-connection protocol state machine, shared by broker and client.
//!
//! [`Connection`] does no I/O and reads no clock. The driver (a tokio task in
//! the broker or client) feeds it and drains it, in this order:
//!
//! 1. Feed what happened: [`Connection::handle_packet`] for each decoded
//!    packet (decode with [`Connection::protocol`] and
//!    [`Connection::max_incoming_packet_size`]), [`Connection::handle_timeout`]
//!    when the deadline from `poll_timeout` has passed, and the
//!    application's requests ([`Connection::publish`], [`Connection::ack`],
//!    [`Connection::send`], [`Connection::accept`], …).
//! 2. Drain [`Connection::poll_transmit`] until `None`, encode and write.
//! 3. Drain [`Connection::poll_event`] until `None` and act on each.
//! 4. Arm a timer for [`Connection::poll_timeout`].
//! 5. When [`Connection::is_closed`] and nothing is left to transmit, close
//!    the socket.
//!
//! An `Err` from a `handle_*` call is a peer fault: the connection has
//! queued the DISCONNECT (or refusing CONNACK) the spec requires and is
//! closed. What outlives the connection is in [`SessionState`], which
//! [`Connection::into_session`] hands back.
//!
//! Inbound QoS 1/2 messages are acknowledged only when the application says
//! so ([`Connection::ack`]): a broker acks after its store has made the
//! message durable. QoS 2 duplicates are recognised by packet identifier and
//! never delivered twice. Nothing is retransmitted within a connection; the
//! session's unacknowledged messages are resent, with DUP set, when a
//! connection resumes it (MQTT-4.4.0-1).

mod alias;
mod session;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use session::{Outbound, SessionState};

use crate::codec::{ConnAck, Connect, Disconnect, Publish, SubAck};
use crate::codec::{Subscribe, Unsubscribe, MAX_PACKET_SIZE};
use crate::string::MqttStr;
use crate::{Packet, PacketId, Protocol, QoS, ReasonCode};

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends CONNECT.
    Client,
    /// Answers with CONNACK.
    Server,
}

/// Local limits. Values we announce to the peer are taken from the CONNECT
/// (client) or CONNACK (server) we send, so what is announced is enforced.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cap on outgoing QoS 1/2 messages in flight, below the peer's
    /// Receive Maximum.
    pub max_inflight: u16,
    /// How long a server waits for CONNECT after the connection opens.
    pub connect_timeout: Option<Duration>,
    /// Most topic aliases used towards the peer (below its Topic Alias
    /// Maximum); 0 sends every topic in full.
    pub max_outbound_aliases: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_inflight: 1024,
            connect_timeout: Some(Duration::from_secs(10)),
            max_outbound_aliases: u16::MAX,
        }
    }
}

/// What the application is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a client asks to connect. Answer with [`Connection::accept`]
    /// or [`Connection::refuse`].
    Connect(Box<Connect>),
    /// Client: the server accepted the connection.
    Connected(ConnAck),
    /// Client: the server refused the connection; it is closed.
    Refused(ConnAck),
    /// Client: the server had no session although ours held unacknowledged
    /// messages; they are handed back to be published again if wanted.
    SessionLost(Vec<Publish>),
    /// An application message arrived. If it has a packet identifier, call
    /// [`Connection::ack`] once it is safe (QoS 1 or 2).
    Message(Publish),
    /// An outgoing QoS 1/2 message is complete (PUBACK, PUBCOMP, or a
    /// PUBREC with an error code).
    Delivered {
        /// Its packet identifier, now free.
        packet_id: PacketId,
        /// The acknowledgement's reason code.
        reason_code: ReasonCode,
    },
    /// An outgoing QoS 2 message reached the peer (its first PUBREC): only
    /// PUBREL and PUBCOMP remain, and the PUBREL is queued. A durable store
    /// records this before the PUBREL is written, so after a restart the
    /// PUBREL is resent, never the message.
    Received {
        /// The message's packet identifier.
        packet_id: PacketId,
    },
    /// An incoming QoS 2 message was released (PUBREL): its identifier is
    /// free and PUBCOMP is queued. A durable store forgets the identifier
    /// before the PUBCOMP is written.
    Released {
        /// The released packet identifier.
        packet_id: PacketId,
    },
    /// Server: a SUBSCRIBE to answer with SUBACK.
    Subscribe(Subscribe),
    /// Server: an UNSUBSCRIBE to answer with UNSUBACK.
    Unsubscribe(Unsubscribe),
    /// Client: the answer to a SUBSCRIBE.
    SubAck(SubAck),
    /// Client: the answer to an UNSUBSCRIBE.
    UnsubAck(SubAck),
    /// An AUTH packet (enhanced authentication, v5).
    Auth(Disconnect),
    /// The peer sent DISCONNECT; the connection is closed.
    Disconnected(Disconnect),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Server: waiting for CONNECT.
    AwaitConnect,
    /// Server: CONNECT delivered, waiting for the application's answer.
    AwaitAccept,
    /// Client: CONNECT sent, waiting for CONNACK.
    AwaitConnAck,
    Open,
    Closed,
}

/// What one side announced about itself: we enforce our own announced
/// limits on what we receive and the peer's on what we send.
#[derive(Debug, Clone, Copy)]
struct Limits {
    receive_maximum: u16,
    maximum_packet_size: u32,
    maximum_qos: QoS,
    retain_available: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            receive_maximum: u16::MAX,
            maximum_packet_size: MAX_PACKET_SIZE,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
        }
    }
}

/// An inbound QoS 1/2 message waiting for its PUBACK / PUBREC to be sent.
#[derive(Debug, Clone, Copy)]
struct PendingAck {
    packet_id: PacketId,
    qos: QoS,
    /// The application's answer, once it has given one.
    answer: Option<ReasonCode>,
    /// A Reason String to send with it (v5).
    reason: Option<&'static str>,
}

/// One MQTT connection's protocol state. See the module docs for the calling
/// order.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    protocol: Protocol,
    state: State,
    session: SessionState,
    peer: Limits,
    local: Limits,
    /// Keep-alive in force (after Server Keep Alive); zero means none.
    keep_alive: Duration,
    last_received: Option<Instant>,
    last_sent: Option<Instant>,
    ping_sent: Option<Instant>,
    connect_deadline: Option<Instant>,
    /// Session Expiry of CONNECT was 0 (§3.14.2.2.2).
    session_expiry_zero: bool,
    /// Authentication Method of CONNECT: enhanced authentication is in use
    /// and every AUTH and the CONNACK carry this method (§4.12).
    auth_method: Option<Box<MqttStr>>,
    /// Server: the client's Request Problem Information (§3.1.2.11.7).
    problem_information: bool,
    inbound_aliases: alias::Inbound,
    outbound_aliases: alias::Outbound,
    /// Inbound QoS 1/2 messages delivered and not yet acknowledged on the
    /// wire, in arrival order: acks go out in that order (MQTT-4.6.0-2,
    /// MQTT-4.6.0-3) even when the application answers out of order.
    awaiting_app_ack: VecDeque<PendingAck>,
    /// Our SUBSCRIBE/UNSUBSCRIBE identifiers awaiting SUBACK/UNSUBACK: a
    /// few at most, and none on a server, so a list rather than a set.
    control_ids: Vec<PacketId>,
    /// Server: whether the client asked for a clean start; client: whether
    /// we did.
    clean_start: bool,
    /// Server: packets that arrived while the application decides on
    /// CONNECT; handled after `accept`.
    /// (Boxed, as `auth_method`: 8 bytes instead of 32 in every
    /// connection, and only a connection whose client sends ahead of
    /// CONNACK ever allocates it.)
    #[allow(clippy::box_collection)]
    deferred: Option<Box<VecDeque<(Instant, Packet)>>>,
    transmit: VecDeque<Packet>,
    events: VecDeque<Event>,
}

impl Connection {
    fn new(role: Role, config: Config, protocol: Protocol, state: State) -> Connection {
        Connection {
            role,
            config,
            protocol,
            state,
            session: SessionState::new(),
            peer: Limits::default(),
            local: Limits::default(),
            keep_alive: Duration::ZERO,
            last_received: None,
            last_sent: None,
            ping_sent: None,
            connect_deadline: None,
            session_expiry_zero: true,
            auth_method: None,
            problem_information: true,
            inbound_aliases: alias::Inbound::new(0),
            outbound_aliases: alias::Outbound::new(0),
            awaiting_app_ack: VecDeque::new(),
            control_ids: Vec::new(),
            clean_start: true,
            deferred: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// A server-side connection that has just been accepted from the
    /// network at `now`, waiting for CONNECT.
    pub fn server(now: Instant, config: Config) -> Connection {
        let deadline = config.connect_timeout.map(|t| now + t);
        let mut conn = Connection::new(Role::Server, config, Protocol::V5, State::AwaitConnect);
        conn.connect_deadline = deadline;
        conn
    }

    /// A client-side connection that sends `connect` and resumes `session`
    /// if the server still has it. Limits announced in `connect`'s
    /// properties are enforced on what the server sends.
    pub fn client(
        now: Instant,
        config: Config,
        connect: Connect,
        session: SessionState,
    ) -> Connection {
        let mut conn = Connection::new(Role::Client, config, connect.protocol, State::AwaitConnAck);
        conn.session = session;
        conn.clean_start = connect.clean_start;
        conn.auth_method = connect
            .properties
            .authentication_method
            .clone()
            .map(Box::new);
        conn.connect_deadline = conn.config.connect_timeout.map(|t| now + t);
        conn.keep_alive = Duration::from_secs(connect.keep_alive.into());
        conn.local.apply_announced(&connect.properties);
        conn.inbound_aliases =
            alias::Inbound::new(connect.properties.topic_alias_maximum.unwrap_or(0));
        conn.last_received = Some(now);
        conn.transmit.push_back(Packet::Connect(Box::new(connect)));
        conn
    }

    /// The protocol version in use (MQTT 5.0 until a server sees CONNECT).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The largest packet to accept from the peer: what we announced.
    pub fn max_incoming_packet_size(&self) -> u32 {
        self.local.maximum_packet_size
    }

    /// Whether the connection is over (after DISCONNECT, a refusal, a
    /// protocol violation or a keep-alive timeout).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether CONNECT/CONNACK have been exchanged successfully.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The keep-alive in force; zero if none.
    pub fn keep_alive(&self) -> Duration {
        self.keep_alive
    }

    /// The session state, for persisting.
    pub fn session(&self) -> &SessionState {
        &self.session
    }

    /// Ends the connection, giving back the session state.
    pub fn into_session(self) -> SessionState {
        self.session
    }

    /// How many more QoS 1/2 messages may be sent before acknowledgements.
    pub fn send_quota(&self) -> usize {
        let window = self.peer.receive_maximum.min(self.config.max_inflight) as usize;
        window.saturating_sub(self.session.outbound_len())
    }

    /// The next packet to write, if any.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Packet> {
        let packet = self.transmit.pop_front()?;
        self.last_sent = Some(now);
        Some(packet)
    }

    /// The next event for the application, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Gives back the memory of queues that are empty, so a connection
    /// that goes quiet holds no buffers. Call it before waiting for the
    /// next input; a busy connection pays one allocation per wake-up.
    pub fn release_idle_memory(&mut self) {
        fn release<T>(queue: &mut VecDeque<T>) {
            if queue.is_empty() && queue.capacity() > 0 {
                *queue = VecDeque::new();
            }
        }
        release(&mut self.transmit);
        release(&mut self.events);
        if self.deferred.as_ref().is_some_and(|d| d.is_empty()) {
            self.deferred = None;
        }
        release(&mut self.awaiting_app_ack);
    }

    /// When [`Connection::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitConnect | State::AwaitConnAck => self.connect_deadline,
            State::Closed | State::AwaitAccept => None,
            State::Open => self.keep_alive_deadline(),
        }
    }
}

impl Limits {
    fn apply_announced(&mut self, props: &crate::properties::Properties) {
        if let Some(v) = props.receive_maximum {
            self.receive_maximum = v;
        }
        if let Some(v) = props.maximum_packet_size {
            self.maximum_packet_size = v;
        }
        if let Some(v) = props.maximum_qos {
            self.maximum_qos = v;
        }
        if let Some(v) = props.retain_available {
            self.retain_available = v;
        }
    }
}

mod handshake;
mod inbound;
mod keepalive;
mod outbound;
