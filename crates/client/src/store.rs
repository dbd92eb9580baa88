//! The on-disk session store (`Options::session_store`): what a client must
//! not forget when its process dies, in a redb file (the broker's engine).
//!
//! - Outgoing QoS 1/2 messages from the moment `publish` accepts them until
//!   they are complete, with how far each got: queued, sent with a packet
//!   identifier, or past PUBREC (only PUBREL/PUBCOMP left).
//! - Incoming QoS 2 packet identifiers between PUBREC and PUBREL, so a
//!   message the broker sends again after a restart is recognised.
//! - The inbox: incoming QoS 1/2 messages from before their PUBACK /
//!   PUBREC until the application has acknowledged them, each with a
//!   delivery number that only grows (kept in `meta`, so it keeps growing
//!   across restarts and an emptied inbox).
//! - The subscriptions, to subscribe again to a broker that lost them.
//!
//! `publish` records an accepted message itself (the caller waits for that
//! fsync). The connection task gathers every other change an iteration of
//! its loop makes into one transaction (group commit), committed before it
//! writes the packets those changes concern: a PUBLISH goes out only once
//! its identifier is on disk, so a restarted client resends it with the
//! same identifier and DUP (the broker then drops a QoS 2 duplicate), never
//! as a new message; a PUBACK or PUBREC goes out only once the message is
//! in the inbox. Removing a message the application acknowledged is not
//! fsynced on its own: lost in a crash, it only means that message is
//! delivered again, marked as redelivered, with the same number.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use pigeon_proto::codec::{Publish, SubscriptionOptions};
use pigeon_proto::flow::Outbound;
use pigeon_proto::{decode, Packet, PacketId, Protocol, QoS};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::asynchronous::ClientError;

/// Sequence → [state, packet id (2), QoS, RETAIN, PUBLISH as v5 bytes].
const OUTGOING: TableDefinition<u64, &[u8]> = TableDefinition::new("outgoing");
/// Incoming QoS 2 packet identifiers awaiting PUBREL.
const INBOUND: TableDefinition<u16, ()> = TableDefinition::new("inbound_qos2");
/// Filter → subscription options byte.
const SUBSCRIPTIONS: TableDefinition<&str, u8> = TableDefinition::new("subscriptions");
/// Delivery number → an incoming message the application has not
/// acknowledged (same layout as `outgoing`, state and id unused).
const INBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("inbox");
/// Counters: `next_delivery`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const NEXT_DELIVERY: &str = "next_delivery";

/// One change the connection task makes; a batch of them is one
/// transaction.
#[derive(Debug)]
pub(crate) enum Op {
    /// Outgoing message `seq` got this far.
    Put(u64, Stage, Box<Publish>),
    /// Outgoing message `seq` is complete (or dropped).
    Done(u64),
    /// An incoming QoS 2 identifier is recorded / released.
    Inbound(u16, bool),
    /// A subscription granted / removed.
    Subscription(String, Option<SubscriptionOptions>),
    /// An incoming message enters the inbox with its delivery number.
    Inbox(u64, Box<Publish>),
    /// The application acknowledged delivery `seq`.
    Delivered(u64),
}

/// How far an outgoing message got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Accepted, not yet sent.
    Queued,
    /// Sent with this identifier, not acknowledged.
    Sent(PacketId),
    /// QoS 2 past PUBREC: only PUBREL / PUBCOMP remain.
    Released(PacketId),
}

/// What the store held when it was opened.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    /// Outgoing messages in the order they were accepted.
    pub outgoing: Vec<(u64, Stage, Publish)>,
    pub inbound_qos2: Vec<u16>,
    pub subscriptions: Vec<(String, SubscriptionOptions)>,
    /// Messages the application had not acknowledged, by delivery number.
    pub inbox: Vec<(u64, Publish)>,
}

/// A client's session on disk. Shared by the handles (which record what
/// `publish` accepts) and the connection task.
#[derive(Debug)]
pub(crate) struct SessionStore {
    db: Database,
    next: AtomicU64,
    next_delivery: AtomicU64,
}

fn failed(e: impl std::fmt::Display) -> ClientError {
    ClientError::Store(e.to_string())
}

impl SessionStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<(Arc<SessionStore>, Saved), ClientError> {
        let db = Database::create(path)
            .map_err(|e| ClientError::Store(format!("{}: {e}", path.display())))?;
        let (saved, next_delivery) = read(&db).map_err(failed)?;
        let next = saved.outgoing.last().map_or(1, |(seq, _, _)| seq + 1);
        let store = SessionStore {
            db,
            next: AtomicU64::new(next),
            next_delivery: AtomicU64::new(next_delivery),
        };
        Ok((Arc::new(store), saved))
    }

    fn write(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), ClientError> {
        let txn = self.db.begin_write().map_err(failed)?;
        f(&txn).map_err(failed)?;
        txn.commit().map_err(failed)
    }

    /// The number for the next message entering the inbox.
    pub fn next_delivery(&self) -> u64 {
        self.next_delivery.fetch_add(1, Ordering::SeqCst)
    }

    /// Applies `ops` in one transaction, fsynced unless it only removes
    /// acknowledged deliveries.
    pub fn apply(&self, ops: &[Op]) -> Result<(), ClientError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(failed)?;
        if ops.iter().all(|op| matches!(op, Op::Delivered(_))) {
            txn.set_durability(redb::Durability::None).map_err(failed)?;
        }
        apply(&txn, ops).map_err(failed)?;
        txn.commit().map_err(failed)
    }

    /// Makes earlier unsynced commits durable (when the client stops).
    pub fn sync(&self) -> Result<(), ClientError> {
        self.write(|_| Ok(()))
    }

    /// Records an accepted QoS 1/2 message; returns its sequence number.
    pub fn accept(&self, message: &Publish) -> Result<u64, ClientError> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        self.put(seq, Stage::Queued, message)?;
        Ok(seq)
    }

    /// Records how far message `seq` got.
    pub fn put(&self, seq: u64, stage: Stage, message: &Publish) -> Result<(), ClientError> {
        let record = encode(stage, message).ok_or_else(|| failed("message cannot be encoded"))?;
        self.write(|txn| {
            txn.open_table(OUTGOING)?.insert(seq, &record[..])?;
            Ok(())
        })
    }
}

fn apply(txn: &redb::WriteTransaction, ops: &[Op]) -> Result<(), redb::Error> {
    let mut outgoing = txn.open_table(OUTGOING)?;
    let mut inbound = txn.open_table(INBOUND)?;
    let mut subscriptions = txn.open_table(SUBSCRIPTIONS)?;
    let mut inbox = txn.open_table(INBOX)?;
    let mut next_delivery = None;
    for op in ops {
        match op {
            Op::Put(seq, stage, message) => {
                if let Some(record) = encode(*stage, message) {
                    outgoing.insert(seq, &record[..])?;
                }
            }
            Op::Done(seq) => {
                outgoing.remove(seq)?;
            }
            Op::Inbound(id, true) => {
                inbound.insert(id, ())?;
            }
            Op::Inbound(id, false) => {
                inbound.remove(id)?;
            }
            Op::Subscription(filter, Some(o)) => {
                subscriptions.insert(filter.as_str(), o.to_byte())?;
            }
            Op::Subscription(filter, None) => {
                subscriptions.remove(filter.as_str())?;
            }
            Op::Inbox(seq, message) => {
                if let Some(record) = encode(Stage::Queued, message) {
                    inbox.insert(seq, &record[..])?;
                }
                next_delivery = next_delivery.max(Some(seq + 1));
            }
            Op::Delivered(seq) => {
                inbox.remove(seq)?;
            }
        }
    }
    if let Some(next) = next_delivery {
        txn.open_table(META)?.insert(NEXT_DELIVERY, next)?;
    }
    Ok(())
}

fn encode(stage: Stage, message: &Publish) -> Option<Vec<u8>> {
    let (state, id) = match stage {
        Stage::Queued => (0u8, 0u16),
        Stage::Sent(id) => (1, id.get()),
        Stage::Released(id) => (2, id.get()),
    };
    let mut plain = message.clone();
    plain.qos = QoS::AtMostOnce;
    plain.packet_id = None;
    plain.dup = false;
    plain.retain = false;
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[state]);
    buf.extend_from_slice(&id.to_be_bytes());
    buf.extend_from_slice(&[message.qos as u8, u8::from(message.retain)]);
    Packet::Publish(plain).encode(Protocol::V5, &mut buf).ok()?;
    Some(buf.to_vec())
}

fn decode_record(bytes: &[u8]) -> Option<(Stage, Publish)> {
    let id = u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?);
    let stage = match (bytes[0], PacketId::new(id)) {
        (0, _) => Stage::Queued,
        (1, Some(id)) => Stage::Sent(id),
        (2, Some(id)) => Stage::Released(id),
        _ => return None,
    };
    let qos = QoS::from_u8(*bytes.get(3)?)?;
    let retain = *bytes.get(4)? != 0;
    let mut buf = BytesMut::from(bytes.get(5..)?);
    match decode(&mut buf, Protocol::V5, u32::MAX) {
        Ok(Some(Packet::Publish(mut p))) => {
            p.qos = qos;
            p.retain = retain;
            Some((stage, p))
        }
        _ => None,
    }
}

/// What the store holds, and the next delivery number.
fn read(db: &Database) -> Result<(Saved, u64), redb::Error> {
    // Create the tables on first use, so reading finds them.
    let txn = db.begin_write()?;
    txn.open_table(OUTGOING)?;
    txn.open_table(INBOUND)?;
    txn.open_table(SUBSCRIPTIONS)?;
    txn.open_table(INBOX)?;
    txn.open_table(META)?;
    txn.commit()?;
    let txn = db.begin_read()?;
    let mut saved = Saved::default();
    for row in txn.open_table(OUTGOING)?.iter()? {
        let (seq, value) = row?;
        if let Some((stage, message)) = decode_record(value.value()) {
            saved.outgoing.push((seq.value(), stage, message));
        }
    }
    for row in txn.open_table(INBOUND)?.iter()? {
        saved.inbound_qos2.push(row?.0.value());
    }
    for row in txn.open_table(SUBSCRIPTIONS)?.iter()? {
        let (filter, options) = row?;
        if let Some(o) = SubscriptionOptions::from_byte(options.value()) {
            saved.subscriptions.push((filter.value().to_owned(), o));
        }
    }
    for row in txn.open_table(INBOX)?.iter()? {
        let (seq, value) = row?;
        if let Some((_, message)) = decode_record(value.value()) {
            saved.inbox.push((seq.value(), message));
        }
    }
    let stored = txn.open_table(META)?.get(NEXT_DELIVERY)?.map(|v| v.value());
    let next_delivery = stored.unwrap_or(1);
    Ok((saved, next_delivery))
}

/// The flow's outbound entries for the messages that were sent (in order),
/// and the sequence numbers of those still queued.
pub(crate) fn outbound(saved: &[(u64, Stage, Publish)]) -> Vec<Outbound> {
    saved
        .iter()
        .filter_map(|(_, stage, message)| {
            let mut p = message.clone();
            match *stage {
                Stage::Queued => None,
                Stage::Sent(id) => {
                    p.packet_id = Some(id);
                    Some(match p.qos {
                        QoS::ExactlyOnce => Outbound::AwaitPubRec(p),
                        _ => Outbound::AwaitPubAck(p),
                    })
                }
                Stage::Released(id) => Some(Outbound::AwaitPubComp(id)),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use pigeon_proto::topic::TopicName;

    use super::*;

    #[test]
    fn what_is_recorded_is_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session");
        let mut m = Publish::new(TopicName::try_from("a/b").unwrap(), &b"one"[..]);
        m.qos = QoS::ExactlyOnce;
        m.properties.content_type = Some("text/plain".try_into().unwrap());
        {
            let (store, saved) = SessionStore::open(&path).unwrap();
            assert!(saved.outgoing.is_empty());
            let a = store.accept(&m).unwrap();
            let b = store.accept(&m).unwrap();
            let c = store.accept(&m).unwrap();
            let id = |n| PacketId::new(n).unwrap();
            store
                .apply(&[
                    Op::Put(a, Stage::Released(id(1)), Box::new(m.clone())),
                    Op::Put(b, Stage::Sent(id(2)), Box::new(m.clone())),
                    Op::Done(c),
                ])
                .unwrap();
            store.accept(&m).unwrap();
            store
                .apply(&[
                    Op::Inbound(7, true),
                    Op::Inbound(8, true),
                    Op::Inbound(7, false),
                    Op::Subscription("x/#".into(), Some(SubscriptionOptions::default())),
                ])
                .unwrap();
        }
        let (store, saved) = SessionStore::open(&path).unwrap();
        let stages: Vec<Stage> = saved.outgoing.iter().map(|(_, s, _)| *s).collect();
        assert_eq!(
            stages,
            [
                Stage::Released(PacketId::new(1).unwrap()),
                Stage::Sent(PacketId::new(2).unwrap()),
                Stage::Queued
            ]
        );
        assert_eq!(
            saved.outgoing[1].2, m,
            "topic, payload, QoS and properties kept"
        );
        assert_eq!(saved.inbound_qos2, [8]);
        assert_eq!(saved.subscriptions.len(), 1);
        assert!(
            store.accept(&m).unwrap() > saved.outgoing[2].0,
            "sequence continues"
        );
        assert_eq!(outbound(&saved.outgoing).len(), 2);
    }

    #[test]
    fn the_inbox_keeps_unacknowledged_messages_and_numbers_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session");
        let mut m = Publish::new(TopicName::try_from("in/box").unwrap(), &b"x"[..]);
        m.qos = QoS::AtLeastOnce;
        {
            let (store, saved) = SessionStore::open(&path).unwrap();
            assert!(saved.inbox.is_empty());
            let (a, b) = (store.next_delivery(), store.next_delivery());
            assert_eq!((a, b), (1, 2));
            let ops = [
                Op::Inbox(a, Box::new(m.clone())),
                Op::Inbox(b, Box::new(m.clone())),
                Op::Inbound(9, true),
            ];
            store.apply(&ops).unwrap();
            store.apply(&[Op::Delivered(a)]).unwrap();
        }
        let (store, saved) = SessionStore::open(&path).unwrap();
        assert_eq!(saved.inbox.len(), 1);
        assert_eq!(saved.inbox[0].0, 2);
        assert_eq!(saved.inbox[0].1, m);
        assert_eq!(saved.inbound_qos2, [9]);
        store.apply(&[Op::Delivered(2)]).unwrap();
        drop(store);
        // Emptied, the inbox still numbers on from where it was.
        let (store, saved) = SessionStore::open(&path).unwrap();
        assert!(saved.inbox.is_empty());
        assert_eq!(store.next_delivery(), 3);
    }
}
