//! Where state that must outlive the process goes.
//!
//! The broker describes every change to durable state as an [`Op`] and
//! submits it to the [`Store`], which answers with a sequence number. The
//! durable store ([`DurableStore`], redb under the data directory) applies
//! ops in submission order on a thread of its own, many to one transaction
//! and one fsync (group commit), and then reports them durable.
//!
//! The rule that makes acknowledgements safe lives in the connection: a
//! connection writes nothing to its socket until every op its packets caused
//! is durable. So a PUBACK, PUBREC, PUBCOMP, SUBACK or CONNACK never reaches
//! a client before what it acknowledges is on disk, and neither does a PUBREL
//! or a QoS 2 PUBLISH whose state a restart must resume.
//!
//! Only persistent sessions (clean session off, or a session expiry above
//! zero) and retained messages produce ops; clean sessions and QoS 0 never
//! touch the disk. [`MemoryStore`] keeps nothing and never makes anyone wait.

use std::fmt::Debug;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pigeon_proto::codec::Publish;
use pigeon_proto::topic::{TopicFilter, TopicName};
use pigeon_proto::{PacketId, QoS};

use crate::router::Subscription;

mod durable;
mod records;

pub use durable::{DurableStore, Mode, OpenError};
pub use records::Expiring;

/// Position of an op in the order the store applies them.
pub type Seq = u64;

/// Where a queued message is on disk: the message body (stored once for
/// every session it goes to) and this session's entry for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// The message body's id.
    pub message: u64,
    /// The session's queue entry.
    pub entry: u64,
}

/// One change to durable state.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Op {
    /// A persistent session was created, resumed or left.
    Session {
        /// The client.
        client_id: Arc<str>,
        /// Seconds it outlives its connection; `None` is forever.
        expiry: Option<u32>,
        /// Unix time its connection ended; `None` while connected.
        disconnected_at: Option<u64>,
        /// The will its connection would leave (while connected), or has
        /// left and is waiting out its delay (after).
        will: Option<Arc<LastWill>>,
        /// Its client's user name and listener, for the ACL.
        identity: Option<Arc<crate::auth::acl::Identity>>,
    },
    /// The session ended: it goes with everything it held.
    DeleteSession {
        /// The client.
        client_id: Arc<str>,
    },
    /// A subscription was added or replaced.
    Subscribe {
        /// The client.
        client_id: Arc<str>,
        /// Its filter.
        filter: TopicFilter,
        /// Its options and identifier.
        subscription: Subscription,
    },
    /// A subscription was removed.
    Unsubscribe {
        /// The client.
        client_id: Arc<str>,
        /// Its filter.
        filter: TopicFilter,
    },
    /// A QoS 1/2 message was queued for a session.
    Enqueue {
        /// The client.
        client_id: Arc<str>,
        /// Body and entry ids.
        stored: Stored,
        /// The message (its body is written with the first entry for it).
        message: Arc<Publish>,
        /// QoS for this session.
        qos: QoS,
        /// RETAIN flag to send.
        retain: bool,
        /// Subscription identifiers to send.
        identifiers: Vec<u32>,
        /// When the message expires (Unix milliseconds), if it does.
        expires_at: Option<u64>,
    },
    /// A QoS 2 message was sent with this packet identifier.
    Sent {
        /// The client.
        client_id: Arc<str>,
        /// The entry.
        stored: Stored,
        /// Its packet identifier.
        packet_id: PacketId,
    },
    /// A QoS 2 message's PUBREC came: only PUBREL/PUBCOMP remain.
    Received {
        /// The client.
        client_id: Arc<str>,
        /// The entry.
        stored: Stored,
    },
    /// The entry is done: acknowledged, or dropped.
    Done {
        /// The client.
        client_id: Arc<str>,
        /// The entry.
        stored: Stored,
    },
    /// A QoS 2 message from this client was answered with PUBREC.
    InboundQos2 {
        /// The client.
        client_id: Arc<str>,
        /// Its packet identifier.
        packet_id: PacketId,
    },
    /// The client released that identifier (PUBREL).
    InboundQos2Done {
        /// The client.
        client_id: Arc<str>,
        /// Its packet identifier.
        packet_id: PacketId,
    },
    /// A retained message was set or replaced.
    Retain {
        /// The message.
        message: Arc<Publish>,
        /// When it expires (Unix milliseconds), if it does.
        expires_at: Option<u64>,
    },
    /// A retained message was cleared.
    Unretain {
        /// Its topic.
        topic: TopicName,
    },
}

impl Op {
    /// Ops that recovery needs but no acknowledgement depends on: a
    /// connection does not wait for them before writing.
    pub fn is_bookkeeping(&self) -> bool {
        matches!(self, Op::Done { .. })
    }
}

/// Ops a connection submitted that are not yet known to be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// The first.
    pub first: Seq,
    /// The last.
    pub last: Seq,
}

impl Pending {
    /// Adds `seq` (submitted after everything already pending).
    pub fn extend(pending: Option<Pending>, seq: Seq) -> Pending {
        match pending {
            Some(p) => Pending { last: seq, ..p },
            None => Pending {
                first: seq,
                last: seq,
            },
        }
    }
}

/// Ops submitted between its creation and its drop form a group that no
/// commit splits (see [`Store::begin_group`]); ended even on a panic, so a
/// group can never hold the writer back for good.
#[derive(Debug)]
pub struct Group<'a> {
    store: &'a dyn Store,
    token: Seq,
}

impl<'a> Group<'a> {
    /// Starts a group.
    pub fn begin(store: &'a dyn Store) -> Group<'a> {
        Group {
            token: store.begin_group(),
            store,
        }
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        self.store.end_group(self.token);
    }
}

/// Some of a connection's ops could not be stored (disk full, I/O error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the store could not write (disk full or I/O error); see the broker log")]
pub struct NotStored;

/// What a store held when the broker started.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Persistent sessions that had not expired.
    pub sessions: Vec<RecoveredSession>,
    /// Retained messages, with when they expire.
    pub retained: Vec<Expiring>,
    /// Wills of sessions that ended while the broker was down: due now.
    pub due_wills: Vec<Arc<Publish>>,
}

/// A client's will: the message it becomes and how long after the
/// connection ends it waits (v5 Will Delay Interval, seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// The message.
    pub message: Arc<Publish>,
    /// Will Delay Interval, in seconds; 0 for none.
    pub delay: u32,
}

/// One session as the store held it.
#[derive(Debug)]
pub struct RecoveredSession {
    /// The client.
    pub client_id: Arc<str>,
    /// Seconds it outlives its connection; `None` is forever.
    pub expiry: Option<u32>,
    /// How long it had been disconnected when the broker started.
    pub offline_for: Duration,
    /// Its client was connected when the broker stopped.
    pub connected: bool,
    /// The will of its connection: due now if `connected`, else one that
    /// was waiting out its delay.
    pub will: Option<Arc<LastWill>>,
    /// Its client's user name and listener (the listener by name only).
    pub identity: Option<Arc<crate::auth::acl::Identity>>,
    /// Its subscriptions.
    pub subscriptions: Vec<(TopicFilter, Subscription)>,
    /// Its queue, in the order the messages were queued.
    pub queue: Vec<RecoveredEntry>,
    /// QoS 2 identifiers received and not yet released.
    pub inbound_qos2: Vec<PacketId>,
}

/// One queued or in-flight message of a recovered session.
#[derive(Debug)]
pub struct RecoveredEntry {
    /// Body and entry ids.
    pub stored: Stored,
    /// The message, read only for a QoS 2 message in flight (the others
    /// stay on disk until they are sent: see [`Store::load`]).
    pub message: Option<Arc<Publish>>,
    /// Its payload's length.
    pub payload_len: usize,
    /// QoS for this session.
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers to send.
    pub identifiers: Vec<u32>,
    /// How far it got.
    pub state: EntryState,
}

/// How far a queued message got before the broker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Not sent (or a QoS 1 message that was: it is sent again).
    Queued,
    /// QoS 2, sent with this identifier, awaiting PUBREC.
    Sent(PacketId),
    /// QoS 2, PUBREC received, awaiting PUBCOMP.
    Received(PacketId),
}

/// Durable state of the broker.
pub trait Store: Debug + Send + Sync {
    /// A short name for the start-up line: `sync`, `batch` or `memory`.
    fn mode(&self) -> &'static str;
    /// The start-up line's description: mode, where, and the loss window.
    fn describe(&self) -> String;
    /// Whether ops are kept at all; if not, the broker need not make them.
    fn is_persistent(&self) -> bool;
    /// A fresh id for a message body or a queue entry.
    fn next_id(&self) -> u64;
    /// Queues `op` to be applied after every op submitted before it.
    fn submit(&self, op: Op) -> Seq;
    /// Starts a group of ops that must be applied together or not at all
    /// (no commit takes some of them without the others); returns its
    /// token for [`Store::end_group`].
    fn begin_group(&self) -> Seq;
    /// Ends the group `begin_group` returned.
    fn end_group(&self, group: Seq);
    /// `Some` once every op in `pending` is durable (or one of them failed).
    fn outcome(&self, pending: Pending) -> Option<Result<(), NotStored>>;
    /// Ready when every op in `pending` is durable, or with `NotStored`
    /// when one of them failed.
    fn poll_durable(&self, pending: Pending, cx: &mut Context<'_>) -> Poll<Result<(), NotStored>>;
    /// Whether writes are succeeding; while they are not, messages that
    /// need storing are refused rather than acknowledged.
    fn is_healthy(&self) -> bool;
    /// Reads a stored message body back: `Ok(None)` if the store does not
    /// have it, `Err` if the store cannot be read right now.
    fn load(&self, message: u64) -> Result<Option<Expiring>, NotStored>;
    /// What the store held at start-up (once; empty afterwards).
    fn take_recovered(&self) -> Recovered;
    /// Applies everything submitted and stops writing (at shutdown).
    fn close(&self);
}

/// Keeps nothing beyond what the broker holds in memory: state is lost
/// when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn mode(&self) -> &'static str {
        "memory"
    }
    fn describe(&self) -> String {
        "memory (nothing is written to disk: sessions, queues and retained messages \
         are lost when the broker stops)"
            .into()
    }
    fn is_persistent(&self) -> bool {
        false
    }
    fn next_id(&self) -> u64 {
        0
    }
    fn submit(&self, _op: Op) -> Seq {
        0
    }
    fn begin_group(&self) -> Seq {
        0
    }
    fn end_group(&self, _: Seq) {}
    fn outcome(&self, _: Pending) -> Option<Result<(), NotStored>> {
        Some(Ok(()))
    }
    fn poll_durable(&self, _: Pending, _: &mut Context<'_>) -> Poll<Result<(), NotStored>> {
        Poll::Ready(Ok(()))
    }
    fn is_healthy(&self) -> bool {
        true
    }
    fn load(&self, _: u64) -> Result<Option<Expiring>, NotStored> {
        Ok(None)
    }
    fn take_recovered(&self) -> Recovered {
        Recovered::default()
    }
    fn close(&self) {}
}
