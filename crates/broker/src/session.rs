//! A client's session as the broker keeps it: subscriptions, the queue of
//! messages waiting to be sent, and while the client is away the protocol
//! state its connection left behind.
//!
//! Each session has its own mutex, held only to push or pop a queue entry,
//! so publishers to different sessions never contend, and the waker of the
//! connection task that queueing wakes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use pigeon_proto::codec::Publish;
use pigeon_proto::flow::SessionState;
use pigeon_proto::topic::TopicFilter;
use pigeon_proto::{QoS, ReasonCode};

use crate::router::{SessionId, ShareGroup, Subscription};
use crate::store::{LastWill, Op, Pending, Seq, Store, Stored};

/// A queued message's body: in memory (shared by every session it goes
/// to), or only on disk — a persistent session that is away keeps its
/// queue there — to be read back when its connection sends it.
#[derive(Debug, Clone)]
pub enum Body {
    /// In memory.
    Here(Arc<Publish>),
    /// In the store, under `Stored::message`.
    OnDisk {
        /// Its payload's length, for the queue's byte limit.
        payload_len: usize,
    },
}

impl Body {
    /// The payload's length.
    pub fn payload_len(&self) -> usize {
        match self {
            Body::Here(m) => m.payload.len(),
            Body::OnDisk { payload_len } => *payload_len,
        }
    }
}

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message as published.
    pub message: Body,
    /// QoS for this subscriber (the lower of message and subscription).
    pub qos: QoS,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers to send (v5).
    pub identifiers: Vec<u32>,
    /// When the message expires, in Unix milliseconds (v5 Message Expiry
    /// Interval): not sent after that. Unknown for a body still on disk
    /// (it is stored with the body).
    pub expires_at: Option<u64>,
    /// Where it is on disk, for a persistent session's QoS 1/2 message.
    pub stored: Option<Stored>,
    /// The store op that wrote it there: once that is durable, the body
    /// may leave memory.
    pub seq: Seq,
    /// The shared subscription group it came through, if any: when this
    /// session's client goes, an unsent message goes to another member.
    pub shared: Option<Arc<ShareGroup>>,
}

/// What [`Session::enqueue`] needs to record a message on disk for a
/// persistent session.
#[derive(Debug, Clone, Copy)]
pub struct Journal<'a> {
    /// The store.
    pub store: &'a dyn Store,
    /// The id of the message's body, taken when a session first needs it
    /// (most messages go to no persistent session).
    pub message: &'a std::sync::OnceLock<u64>,
}

/// A message queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The store op recording it, for a persistent session's QoS 1/2
    /// message: the publisher's acknowledgement waits for it.
    pub seq: Option<Seq>,
    /// Older QoS 0 messages dropped to make room for it.
    pub evicted: u64,
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue is full of QoS 1/2 messages.
    QueueFull,
    /// QoS 0 for an offline session, which is not queued by default.
    Offline,
    /// The ACL does not let the session's client read the topic (or the
    /// session has no identity while an ACL is configured).
    Denied,
}

/// The connection currently serving a session.
#[derive(Debug, Clone)]
pub struct Owner {
    /// Distinguishes connections of the same client over time.
    pub generation: u64,
    /// Set (and `wake` notified) to make that connection let go, with the
    /// DISCONNECT reason: a session take-over or the broker shutting down.
    pub kick: Option<ReasonCode>,
}

/// What the session holds, behind its mutex.
#[derive(Debug, Default)]
pub struct Inner {
    /// Messages not yet handed to the connection, oldest first.
    pub queue: VecDeque<Delivery>,
    /// Payload bytes in `queue`.
    pub queued_bytes: usize,
    /// QoS 0 entries in `queue`: when it is full of QoS 1/2 messages, a
    /// refusal must not scan a thousand entries looking for one to drop.
    pub queued_qos0: usize,
    /// Protocol state left by the last connection (in flight, QoS 2 ids).
    pub flow: SessionState,
    /// The session's subscriptions.
    pub subscriptions: BTreeMap<TopicFilter, Subscription>,
    /// The serving connection, if connected.
    pub owner: Option<Owner>,
    /// Its client's user name and listener, for the ACL (set at CONNECT;
    /// `None` for a session stored before the broker kept identities).
    pub identity: Option<Arc<crate::auth::acl::Identity>>,
    /// The ACL generation every queued message was checked under against
    /// `identity`; 0 when unknown (restored from disk, queued under an
    /// older ACL, or the identity changed): the connection then checks
    /// each message again as it sends it.
    pub checked_under: u64,
    /// Seconds the session outlives its connection; `None` means forever.
    pub expiry: Option<u32>,
    /// When the last connection ended.
    pub disconnected_at: Option<Instant>,
    /// Messages dropped because of limits (counted, logged once).
    pub dropped: u64,
    /// Set when the session is discarded: nothing may be queued any more.
    pub ended: bool,
    /// It outlives its connection, so its state is kept in the store.
    pub persistent: bool,
    /// Where each QoS 1/2 message in flight to it is on disk, by packet id.
    /// (Boxed: only persistent sessions with messages in flight have any.)
    pub in_flight: Option<Box<HashMap<u16, Stored>>>,
    /// Something was queued, or the connection was asked to let go, since
    /// the connection last looked.
    woken: bool,
    /// The connection task waiting for `woken`.
    waker: Option<Waker>,
    /// The queue-full warning was logged for this session.
    pub warned_full: bool,
    /// A will waiting out its Will Delay Interval, and when it is due (the
    /// delay or the session's end, whichever comes first).
    /// (Boxed: every idle connection has a session, few have a will.)
    pub delayed_will: Option<Box<(Arc<LastWill>, Instant)>>,
    /// QoS 1/2 messages in flight to it that came through a shared
    /// subscription, by packet id.
    /// (Boxed: most sessions never take a shared message.)
    pub shared_in_flight: Option<Box<HashMap<u16, Arc<ShareGroup>>>>,
}

/// A session.
#[derive(Debug)]
pub struct Session {
    /// The broker-internal id the router uses.
    pub id: SessionId,
    /// The client identifier.
    pub client_id: Arc<str>,
    inner: Mutex<Inner>,
}

/// Queue limits of one session.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Entries.
    pub messages: usize,
    /// Payload bytes.
    pub bytes: usize,
    /// Whether QoS 0 is queued while offline.
    pub qos0_offline: bool,
}

impl Session {
    /// A new, empty session.
    pub fn new(id: SessionId, client_id: Arc<str>) -> Session {
        Session {
            id,
            client_id,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Locks the session. A poisoned lock (a panic elsewhere) still gives
    /// the data: queues stay usable rather than the broker failing.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a message, applying the limits: when full, the oldest QoS 0
    /// message makes room; if there is none, the new message is refused.
    /// A persistent session's QoS 1/2 message is recorded in the store
    /// under the session lock, so its entry is on its way to disk before
    /// the connection can send it and have it acknowledged; the returned
    /// sequence number is what the publisher's acknowledgement waits for.
    pub fn enqueue(
        &self,
        delivery: Delivery,
        limits: QueueLimits,
        journal: Option<Journal<'_>>,
    ) -> Result<Queued, Refused> {
        self.enqueue_checked(delivery, limits, journal, None)
    }

    /// [`Session::enqueue`], first checking under the same lock that the
    /// ACL, if any, lets the session's client read the message's topic,
    /// and noting the ACL generation the queue was checked under.
    pub fn enqueue_checked(
        &self,
        mut delivery: Delivery,
        limits: QueueLimits,
        journal: Option<Journal<'_>>,
        acl: Option<&crate::auth::acl::AclSet>,
    ) -> Result<Queued, Refused> {
        let mut inner = self.lock();
        if inner.ended {
            return Ok(Queued {
                seq: None,
                evicted: 0,
            });
        }
        if let Some(acl) = acl {
            if let (true, Body::Here(message)) = (acl.is_active(), &delivery.message) {
                let topic = message.topic.as_str();
                let allowed = inner.identity.as_ref().is_some_and(|id| {
                    acl.allows(id, &self.client_id, topic, crate::auth::acl::Access::Read)
                });
                if !allowed {
                    return Err(Refused::Denied);
                }
            }
            if inner.queue.is_empty() {
                inner.checked_under = acl.generation;
            } else if inner.checked_under != acl.generation {
                inner.checked_under = 0;
            }
        }
        if inner.owner.is_none() && delivery.qos == QoS::AtMostOnce && !limits.qos0_offline {
            return Err(Refused::Offline);
        }
        // Routing queues messages it holds; only recovery and `spill` make
        // bodies that are on disk alone.
        let Body::Here(message) = &delivery.message else {
            return Err(Refused::QueueFull);
        };
        let size = message.payload.len();
        let mut evicted = 0;
        while inner.queue.len() >= limits.messages || inner.queued_bytes + size > limits.bytes {
            let oldest_qos0 = match inner.queued_qos0 {
                0 => None,
                _ => inner.queue.iter().position(|d| d.qos == QoS::AtMostOnce),
            };
            let Some(index) = oldest_qos0 else {
                inner.dropped += 1;
                return Err(Refused::QueueFull);
            };
            if let Some(old) = inner.queue.remove(index) {
                inner.forget(&old);
                inner.dropped += 1;
                evicted += 1;
            }
        }
        let seq = match journal {
            Some(j) if inner.persistent && delivery.qos != QoS::AtMostOnce => {
                let stored = Stored {
                    message: *j.message.get_or_init(|| j.store.next_id()),
                    entry: j.store.next_id(),
                };
                let seq = j.store.submit(Op::Enqueue {
                    client_id: self.client_id.clone(),
                    stored,
                    message: message.clone(),
                    qos: delivery.qos,
                    retain: delivery.retain,
                    identifiers: delivery.identifiers.clone(),
                    expires_at: delivery.expires_at,
                });
                delivery.stored = Some(stored);
                delivery.seq = seq;
                Some(seq)
            }
            _ => None,
        };
        inner.remember(&delivery);
        inner.queue.push_back(delivery);
        wake(inner);
        Ok(Queued { seq, evicted })
    }

    /// The ACL generation its queue was checked under (0: unknown).
    pub fn checked_under(&self) -> u64 {
        self.lock().checked_under
    }

    /// Asks the connection holding the session, if any, to let go with
    /// `reason`. Returns whether one held it.
    pub fn kick(&self, reason: ReasonCode) -> bool {
        let mut inner = self.lock();
        let Some(owner) = inner.owner.as_mut() else {
            return false;
        };
        owner.kick = Some(reason);
        wake(inner);
        true
    }

    /// Ready once something was queued or the connection was asked to let
    /// go since the last time it was ready. Polled rather than a `Notify`:
    /// the waker lives under the session lock that queueing takes anyway,
    /// and the waiting connection task holds no waiter of its own.
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.lock();
        if std::mem::take(&mut inner.woken) {
            return Poll::Ready(());
        }
        match &inner.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => inner.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Why the connection `generation` was asked to let go, if it was.
    pub fn kicked(&self, generation: u64) -> Option<ReasonCode> {
        match &self.lock().owner {
            Some(owner) if owner.generation == generation => owner.kick,
            // Another connection owns the session, or none does: this one
            // has lost it either way.
            _ => Some(ReasonCode::SESSION_TAKEN_OVER),
        }
    }

    /// While the session is away, lets go of the bodies of queued messages
    /// that are safely in the store: a million messages queued for absent
    /// clients live on disk, not in memory. Returns how many it let go.
    pub fn spill(&self, store: &dyn Store) -> usize {
        let mut inner = self.lock();
        if inner.owner.is_some() || !inner.persistent {
            return 0;
        }
        let mut spilled = 0;
        for d in inner.queue.iter_mut() {
            let Body::Here(message) = &d.message else {
                continue;
            };
            let on_disk = Pending {
                first: d.seq,
                last: d.seq,
            };
            if d.stored.is_none() || store.outcome(on_disk) != Some(Ok(())) {
                continue;
            }
            d.message = Body::OnDisk {
                payload_len: message.payload.len(),
            };
            spilled += 1;
        }
        spilled
    }

    /// Moves the oldest queued messages into `out` under one lock: up to
    /// `max`, of which at most `quota` QoS 1/2 (the connection's inflight
    /// room); stops at the first QoS 1/2 message beyond the quota, so the
    /// order is kept.
    pub fn take(&self, mut quota: usize, max: usize, out: &mut Vec<Delivery>) {
        let mut inner = self.lock();
        while out.len() < max {
            let Some(front) = inner.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce {
                if quota == 0 {
                    break;
                }
                quota -= 1;
            }
            if let Some(delivery) = inner.queue.pop_front() {
                inner.forget(&delivery);
                out.push(delivery);
            }
        }
    }

    /// Takes the oldest queued message.
    pub fn dequeue(&self) -> Option<Delivery> {
        let mut inner = self.lock();
        let delivery = inner.queue.pop_front()?;
        inner.forget(&delivery);
        Some(delivery)
    }

    /// Puts a message back at the front (the connection could not send it yet).
    pub fn requeue_front(&self, delivery: Delivery) {
        let mut inner = self.lock();
        inner.remember(&delivery);
        inner.queue.push_front(delivery);
    }
}

/// Marks the session woken and wakes its connection, outside the lock.
fn wake(mut inner: MutexGuard<'_, Inner>) {
    inner.woken = true;
    let waker = inner.waker.take();
    drop(inner);
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Inner {
    /// Notes where the message in flight with `packet_id` is on disk.
    pub fn note_in_flight(&mut self, packet_id: u16, stored: Stored) {
        self.in_flight
            .get_or_insert_with(Box::default)
            .insert(packet_id, stored);
    }

    /// Where the message in flight with `packet_id` is on disk; `remove`
    /// once its exchange is complete.
    pub fn stored_in_flight(&mut self, packet_id: u16, remove: bool) -> Option<Stored> {
        let map = self.in_flight.as_mut()?;
        match remove {
            true => map.remove(&packet_id),
            false => map.get(&packet_id).copied(),
        }
    }

    /// The will of a connection that just ended (abnormally, or with
    /// DISCONNECT 0x04), if it is to be published: either now (returned
    /// first) or, with a Will Delay Interval and a session that lives on,
    /// later (kept here and returned second, for the store).
    /// MQTT-3.1.2-8 (5.0): after the delay or at the session's end,
    /// whichever comes first.
    pub fn settle_will(
        &mut self,
        will: Option<Arc<LastWill>>,
        now: Instant,
    ) -> (Option<Arc<Publish>>, Option<Arc<LastWill>>) {
        let Some(will) = will else {
            return (None, None);
        };
        let lives_on = self.expiry != Some(0);
        if will.delay == 0 || !lives_on {
            return (Some(will.message.clone()), None);
        }
        let wait = will.delay.min(self.expiry.unwrap_or(u32::MAX));
        let due = now + std::time::Duration::from_secs(wait.into());
        self.delayed_will = Some(Box::new((will.clone(), due)));
        (None, Some(will))
    }

    /// Accounts for an entry entering the queue.
    fn remember(&mut self, d: &Delivery) {
        self.queued_bytes += d.message.payload_len();
        self.queued_qos0 += usize::from(d.qos == QoS::AtMostOnce);
    }

    /// Accounts for an entry leaving the queue.
    fn forget(&mut self, d: &Delivery) {
        self.queued_bytes -= d.message.payload_len();
        self.queued_qos0 -= usize::from(d.qos == QoS::AtMostOnce);
    }

    /// Puts back a message recovered from the store, beyond the limits:
    /// the store held it, so it was accepted once.
    pub fn push_recovered(&mut self, delivery: Delivery) {
        self.remember(&delivery);
        self.queue.push_back(delivery);
    }

    /// Reads back into memory the bodies of queued messages that only the
    /// store had, before the store lets the session go. One that cannot be
    /// read stays as it is (and is dropped when its turn comes).
    pub fn load_spilled(&mut self, store: &dyn Store) {
        for d in self.queue.iter_mut() {
            if let (Body::OnDisk { .. }, Some(stored)) = (&d.message, d.stored) {
                if let Ok(Some((message, expires_at))) = store.load(stored.message) {
                    d.message = Body::Here(message);
                    d.expires_at = expires_at;
                }
            }
        }
    }

    /// Takes the queued messages that came through shared subscriptions,
    /// keeping the others in order.
    pub fn take_shared(&mut self) -> Vec<Delivery> {
        if self.queue.iter().all(|d| d.shared.is_none()) {
            return Vec::new();
        }
        let (shared, own): (VecDeque<_>, VecDeque<_>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|d| d.shared.is_some());
        self.clear_queue();
        for d in own {
            self.remember(&d);
            self.queue.push_back(d);
        }
        shared.into()
    }

    /// Empties the queue.
    pub fn clear_queue(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.queued_qos0 = 0;
    }
}

#[cfg(test)]
mod tests {
    use pigeon_proto::topic::TopicName;

    use super::*;

    fn delivery(qos: QoS, tag: u8) -> Delivery {
        let topic = TopicName::try_from("t").unwrap();
        let message = Arc::new(Publish::new(topic, vec![tag]));
        Delivery {
            message: Body::Here(message),
            qos,
            retain: false,
            identifiers: Vec::new(),
            expires_at: None,
            stored: None,
            seq: 0,
            shared: None,
        }
    }

    fn connected() -> Session {
        let s = Session::new(1, "c".into());
        s.lock().owner = Some(Owner {
            generation: 1,
            kick: None,
        });
        s
    }

    const LIMITS: QueueLimits = QueueLimits {
        messages: 3,
        bytes: 1 << 20,
        qos0_offline: false,
    };

    #[test]
    fn full_queue_drops_the_oldest_qos0_first_then_refuses() {
        let s = connected();
        s.enqueue(delivery(QoS::AtLeastOnce, 1), LIMITS, None)
            .unwrap();
        s.enqueue(delivery(QoS::AtMostOnce, 2), LIMITS, None)
            .unwrap();
        s.enqueue(delivery(QoS::AtLeastOnce, 3), LIMITS, None)
            .unwrap();
        let queued = s.enqueue(delivery(QoS::AtLeastOnce, 4), LIMITS, None);
        assert_eq!(queued.unwrap().evicted, 1, "the QoS 0 message made room");
        assert_eq!(
            s.enqueue(delivery(QoS::AtLeastOnce, 5), LIMITS, None),
            Err(Refused::QueueFull)
        );
        let tags: Vec<u8> = std::iter::from_fn(|| s.dequeue())
            .map(|d| match d.message {
                Body::Here(m) => m.payload[0],
                Body::OnDisk { .. } => unreachable!("nothing is spilled here"),
            })
            .collect();
        assert_eq!(tags, [1, 3, 4]);
        assert_eq!(s.lock().dropped, 2);
        assert_eq!(s.lock().queued_bytes, 0);
    }

    #[test]
    fn offline_sessions_do_not_queue_qos0_unless_configured() {
        let s = Session::new(1, "c".into());
        assert_eq!(
            s.enqueue(delivery(QoS::AtMostOnce, 1), LIMITS, None),
            Err(Refused::Offline)
        );
        s.enqueue(delivery(QoS::AtLeastOnce, 2), LIMITS, None)
            .unwrap();
        let keep = QueueLimits {
            qos0_offline: true,
            ..LIMITS
        };
        s.enqueue(delivery(QoS::AtMostOnce, 3), keep, None).unwrap();
        assert_eq!(s.lock().queue.len(), 2);
    }
}
