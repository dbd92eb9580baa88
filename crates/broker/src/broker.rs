//! State shared by all connections: the session registry, the router, the
//! retained messages and the counters, and the operations on them that a
//! connection needs (attach a session, route a message, subscribe).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pigeon_proto::codec::{Publish, SubscriptionOptions};
use pigeon_proto::flow::{Outbound, SessionState};
use pigeon_proto::topic::{TopicFilter, TopicName};
use pigeon_proto::{QoS, ReasonCode};
use tokio::sync::Notify;

use crate::auth::acl::{Access, AclSet, Identity};
use crate::auth::Authenticator;
use crate::config::{Config, SharedStrategy};
use crate::router::{Router, SessionId, ShareGroup, Subscription};
use crate::session::{Body, Delivery, Journal, Owner, QueueLimits, Refused, Session};
use crate::store::{
    EntryState, Expiring, Group, LastWill, Op, Recovered, RecoveredEntry, Seq, Store,
};

/// Counters behind `$SYS` (mosquitto's names).
#[derive(Debug, Default)]
pub struct Stats {
    /// PUBLISH packets received.
    pub messages_received: AtomicU64,
    /// PUBLISH packets sent.
    pub messages_sent: AtomicU64,
    /// Bytes read from clients.
    pub bytes_received: AtomicU64,
    /// Bytes written to clients.
    pub bytes_sent: AtomicU64,
    /// Connected clients.
    pub clients_connected: AtomicUsize,
    /// Most clients connected at once.
    pub clients_maximum: AtomicUsize,
    /// Messages dropped by queue limits.
    pub messages_dropped: AtomicU64,
    /// Queued messages whose bodies left memory for the store.
    pub messages_spilled: AtomicU64,
    /// Queued messages whose Message Expiry Interval passed before they
    /// could be sent.
    pub messages_expired: AtomicU64,
    /// Messages not sent because they exceed the client's Maximum Packet
    /// Size (v5).
    pub messages_too_large: AtomicU64,
}

/// Where a published message went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Sessions it was queued for.
    pub queued: usize,
    /// Sessions whose limits refused it.
    pub refused: usize,
    /// The first and last store ops it caused: its acknowledgement waits
    /// for every op between them (a failure of any counts).
    pub first: Option<Seq>,
    pub last: Option<Seq>,
    /// It needed storing and the store cannot write: it went nowhere.
    pub unstored: bool,
}

impl Routed {
    fn note(&mut self, seq: Option<Seq>) {
        if self.first.is_none() {
            self.first = seq;
        }
        self.last = self.last.max(seq);
    }
}

/// A message on its way to one member of a shared subscription group.
struct Pick<'a> {
    message: &'a Arc<Publish>,
    /// The publishing session (the sticky strategy keys on it).
    from: Option<SessionId>,
    expires_at: Option<u64>,
    journal: Option<Journal<'a>>,
    /// A member that is leaving: not a candidate.
    gone: Option<SessionId>,
    /// Members the ACL does not let read the topic are skipped.
    acl: &'a AclSet,
}

/// A pseudo-random number (for the `random` shared subscription strategy;
/// nothing secret depends on it).
fn random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(hash_u64(std::process::id().into()) | 1);
    }
    STATE.with(|s| {
        // xorshift64
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

/// A well-mixed hash of `v` (SplitMix64's finaliser).
fn hash_u64(v: u64) -> u64 {
    let mut z = v.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What a connection gets when it attaches to a session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub session: Arc<Session>,
    pub present: bool,
    pub flow: SessionState,
    pub generation: u64,
    /// The store op recording the session: CONNACK waits for it.
    pub seq: Option<Seq>,
    /// The store op deleting a session this one replaced: CONNACK waits
    /// for it too.
    pub discarded: Option<Seq>,
}

/// Password checks (argon2id: tens of MiB, tens of ms each) run at once
/// at most; the others wait their turn (within `limits.auth_timeout_ms`).
const AUTH_SLOTS: usize = 8;

/// The broker's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub started: Instant,
    pub stats: Stats,
    router: RwLock<Router>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    by_id: RwLock<HashMap<SessionId, Arc<Session>>>,
    /// Retained messages, with when each expires (Unix milliseconds).
    retained: RwLock<HashMap<TopicName, Expiring>>,
    next_id: AtomicU64,
    /// Set once shutdown has begun.
    pub shutting_down: AtomicBool,
    /// Open network connections, before and after CONNECT (the
    /// `max_connections` limit).
    pub open_connections: AtomicUsize,
    /// Notified whenever a connection lets go of its session: a take-over
    /// waits on it (one for the broker, not one per session).
    released: Notify,
    store: Box<dyn Store>,
    pub auth: Box<dyn Authenticator>,
    /// The ACL files (replaced whole on SIGHUP).
    acl: RwLock<Arc<AclSet>>,
    /// Blocking authentication checks that may run at once.
    pub auth_slots: Arc<tokio::sync::Semaphore>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(
        config: Config,
        store: Box<dyn Store>,
        auth: Box<dyn Authenticator>,
        acl: AclSet,
    ) -> Shared {
        Shared {
            config,
            started: Instant::now(),
            stats: Stats::default(),
            router: RwLock::default(),
            sessions: Mutex::default(),
            by_id: RwLock::default(),
            retained: RwLock::default(),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            open_connections: AtomicUsize::new(0),
            released: Notify::new(),
            store,
            auth,
            acl: RwLock::new(Arc::new(acl)),
            auth_slots: Arc::new(tokio::sync::Semaphore::new(AUTH_SLOTS)),
        }
    }

    /// The ACL, when one is configured (else everything is allowed).
    pub fn acl(&self) -> Option<Arc<AclSet>> {
        let acl = read(&self.acl).clone();
        acl.is_active().then_some(acl)
    }

    /// The ACL files as loaded now (inactive when none is configured).
    pub fn acl_set(&self) -> Arc<AclSet> {
        read(&self.acl).clone()
    }

    /// Puts new ACL rules in place (SIGHUP).
    pub fn set_acl(&self, acl: AclSet) {
        *write(&self.acl) = Arc::new(acl);
    }

    /// The identity `client_id`'s session was made with, if it has one.
    pub fn session_identity(&self, client_id: &str) -> Option<Arc<Identity>> {
        let session = self.sessions().get(client_id).cloned()?;
        let identity = session.lock().identity.clone();
        identity
    }

    /// Publishes a will, if its client may still write its topic (the ACL
    /// may have changed since CONNECT).
    fn publish_will(&self, session: &Session, identity: Option<&Identity>, will: Arc<Publish>) {
        if let Some(acl) = self.acl() {
            let allowed = identity.is_some_and(|id| {
                acl.allows(id, &session.client_id, will.topic.as_str(), Access::Write)
            });
            if !allowed {
                tracing::info!(
                    client_id = %session.client_id,
                    "will not published: the ACL denies write to '{}'",
                    will.topic.as_str()
                );
                return;
            }
        }
        self.publish(will, None);
    }

    /// Rebuilds what the store held: sessions (disconnected, with their
    /// subscriptions, queues and in-flight state) and retained messages.
    pub fn restore(&self, recovered: Recovered) {
        let now = Instant::now();
        let count = recovered.sessions.len();
        let mut ended = Vec::new();
        let mut router = write(&self.router);
        let mut sessions = self.sessions();
        let mut by_id = write(&self.by_id);
        for found in recovered.sessions {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let session = Arc::new(Session::new(id, found.client_id));
            {
                let mut inner = session.lock();
                inner.persistent = true;
                inner.expiry = found.expiry;
                inner.identity = found.identity.map(|id| {
                    let listener = Identity::listener_of(&id.listener_name, &self.config);
                    Arc::new(Identity {
                        listener,
                        ..Identity::clone(&id)
                    })
                });
                let left = now.checked_sub(found.offline_for).unwrap_or(now);
                inner.disconnected_at = Some(left);
                match (found.connected, found.will) {
                    (true, will) => ended.push((session.clone(), will)),
                    // Waiting out its delay when the broker stopped; the
                    // housekeeping publishes it once due.
                    (false, Some(will)) => {
                        inner.settle_will(Some(will), left);
                    }
                    (false, None) => {}
                }
                for (filter, sub) in found.subscriptions {
                    router.subscribe(&filter, id, sub);
                    inner.subscriptions.insert(filter, sub);
                }
                let mut outbound = Vec::new();
                for entry in found.queue {
                    restore_entry(&mut inner, &mut outbound, entry);
                }
                let inbound = found.inbound_qos2.iter().map(|id| id.get());
                inner.flow = SessionState::restore(outbound, inbound);
            }
            sessions.insert(session.client_id.clone(), session.clone());
            by_id.insert(id, session);
        }
        let mut retained = write(&self.retained);
        for (message, expires_at) in recovered.retained {
            retained.insert(message.topic.clone(), (message, expires_at));
        }
        drop((router, sessions, by_id, retained));
        if count > 0 {
            tracing::info!(
                sessions = count,
                "broker: sessions restored in {:.1?}",
                now.elapsed()
            );
        }
        // MQTT-3.1.2-8 (3.1.1): these clients were connected when the broker
        // stopped; their connections ended without DISCONNECT.
        // Their connections ended now: their expiry counts from here, and
        // each will goes once (it is cleared in the same commit).
        for (session, will) in ended {
            let _group = Group::begin(&*self.store);
            let (due, kept, identity) = {
                let mut inner = session.lock();
                let settled = inner.settle_will(will, now);
                self.store.submit(Op::Session {
                    client_id: session.client_id.clone(),
                    expiry: inner.expiry,
                    disconnected_at: Some(unix_now()),
                    will: settled.1.clone(),
                    identity: inner.identity.clone(),
                });
                (settled.0, settled.1, inner.identity.clone())
            };
            drop(kept);
            if let Some(will) = due {
                self.publish_will(&session, identity.as_deref(), will);
            }
        }
        // Sessions that expired while the broker was down end now, and
        // their waiting wills with them. (Their identities are gone with
        // them: under an ACL these wills are not sent.)
        if self.acl().is_none() {
            for will in recovered.due_wills {
                self.publish(will, None);
            }
        }
    }

    fn queue_limits(&self) -> QueueLimits {
        QueueLimits {
            messages: self.config.limits.max_queued_messages,
            bytes: self.config.limits.max_queued_bytes,
            qos0_offline: self.config.queue_qos0,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Attaches a new connection to `client_id`'s session, taking it over
    /// from a connection that still holds it (MQTT-3.1.4-3): that one is
    /// told to let go and its protocol state is handed over, so nothing in
    /// flight is lost. A clean start discards the old session.
    pub async fn attach(
        &self,
        client_id: &str,
        clean_start: bool,
        expiry: Option<u32>,
        will: Option<Arc<LastWill>>,
        identity: Arc<Identity>,
    ) -> Attached {
        let existing = self.sessions().get(client_id).cloned();
        if let Some(old) = &existing {
            self.kick_and_wait(old).await;
        }
        let mut sessions = self.sessions();
        let mut discarded = None;
        let resume = match sessions.get(client_id) {
            Some(s) if !clean_start && !s.lock().ended => Some(s.clone()),
            Some(s) => {
                let s = s.clone();
                drop(sessions);
                discarded = self.discard(&s);
                sessions = self.sessions();
                None
            }
            None => None,
        };
        let present = resume.is_some();
        let session = resume.unwrap_or_else(|| {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let s = Arc::new(Session::new(id, client_id.into()));
            sessions.insert(s.client_id.clone(), s.clone());
            write(&self.by_id).insert(id, s.clone());
            s
        });
        drop(sessions);
        let generation = self.next_id.fetch_add(1, Ordering::Relaxed);
        let persistent = expiry != Some(0) && self.store.is_persistent();
        let mut seq = None;
        let flow = {
            let mut inner = session.lock();
            inner.owner = Some(Owner {
                generation,
                kick: None,
            });
            inner.expiry = expiry;
            // Messages queued for another identity (a take-over by another
            // user or through another listener) are checked again as they
            // are sent.
            if inner.identity.as_deref() != Some(&*identity) {
                inner.checked_under = 0;
            }
            inner.identity = Some(identity.clone());
            inner.disconnected_at = None;
            // MQTT-3.1.3-9 (5.0): a new connection to the session before the
            // will delay passed: that will is not sent.
            inner.delayed_will = None;
            if persistent {
                // With its will: if the broker dies, the client's connection
                // ends abnormally and the restarted broker sends it.
                seq = Some(self.store.submit(Op::Session {
                    client_id: session.client_id.clone(),
                    expiry,
                    disconnected_at: None,
                    will,
                    identity: Some(identity),
                }));
            } else if inner.persistent {
                // Resumed with a session that now ends with the connection:
                // its queue comes back into memory before the store drops it.
                inner.load_spilled(&*self.store);
                discarded = Some(self.store.submit(Op::DeleteSession {
                    client_id: session.client_id.clone(),
                }));
            }
            inner.persistent = persistent;
            std::mem::take(&mut inner.flow)
        };
        Attached {
            session,
            present,
            flow,
            generation,
            seq,
            discarded,
        }
    }

    /// Asks the connection holding `session` to let go, and waits (bounded)
    /// until it has.
    async fn kick_and_wait(&self, session: &Session) {
        // MQTT-3.1.4-3: the existing connection is told to go.
        if !session.kick(ReasonCode::SESSION_TAKEN_OVER) {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            // Registered before looking, so a release in between still wakes us.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if session.lock().owner.is_none() {
                return;
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                tracing::warn!(client_id = %session.client_id, "previous connection did not let go in 5 s; taking over");
                session.lock().owner = None;
                return;
            }
        }
    }

    /// A connection lets go of its session, leaving its protocol state and
    /// the will it left (abnormal end or 0x04), which is published now or
    /// after its delay. Returns whether the session ends with the
    /// connection (expiry 0).
    pub fn release(
        &self,
        session: &Arc<Session>,
        generation: u64,
        flow: SessionState,
        will: Option<Arc<LastWill>>,
    ) -> bool {
        let (ends, due, handed_on, identity) = {
            let mut inner = session.lock();
            if inner.owner.as_ref().map(|o| o.generation) != Some(generation) {
                return false;
            }
            inner.owner = None;
            inner.flow = flow;
            let ending = inner.expiry == Some(0);
            let handed_on = self.hand_on_shared(session, &mut inner, ending);
            let now = Instant::now();
            inner.disconnected_at = Some(now);
            let ends = inner.expiry == Some(0);
            let (due, waiting) = inner.settle_will(will, now);
            if inner.persistent && !ends {
                // Its expiry counts from now, across restarts too; a will
                // waiting out its delay stays stored with it.
                self.store.submit(Op::Session {
                    client_id: session.client_id.clone(),
                    expiry: inner.expiry,
                    disconnected_at: Some(unix_now()),
                    will: waiting,
                    identity: inner.identity.clone(),
                });
            }
            (ends, due, handed_on, inner.identity.clone())
        };
        if ends {
            self.remove_session(session);
        }
        self.released.notify_waiters();
        if let Some(will) = due {
            self.publish_will(session, identity.as_deref(), will);
        }
        for (group, message, expires_at) in handed_on {
            self.redispatch(&group, message, expires_at, session.id);
        }
        ends
    }

    /// The messages a departing member of shared subscriptions leaves for
    /// the other members (§4.8.2): those queued and not yet sent, and, when
    /// its session ends with the connection, QoS 1 messages in flight
    /// (MQTT-4.8.2-4/-5 keep a QoS 2 message that was sent with its
    /// session, and `settle` removes a refused one, MQTT-4.8.2-6).
    fn hand_on_shared(
        &self,
        session: &Session,
        inner: &mut crate::session::Inner,
        ending: bool,
    ) -> Vec<(Arc<ShareGroup>, Arc<Publish>, Option<u64>)> {
        let mut out = Vec::new();
        for d in inner.take_shared() {
            let Some(group) = d.shared else { continue };
            let message = match d.message {
                Body::Here(m) => Some(m),
                Body::OnDisk { .. } => d
                    .stored
                    .and_then(|s| self.store.load(s.message).ok().flatten())
                    .map(|(m, _)| m),
            };
            if let Some(stored) = d.stored {
                self.store.submit(Op::Done {
                    client_id: session.client_id.clone(),
                    stored,
                });
            }
            if let Some(message) = message {
                out.push((group, message, d.expires_at));
            }
        }
        // Taken only when the session ends: otherwise it stays for the
        // acknowledgements a resumed connection brings.
        let shared_in_flight = match ending {
            true => inner.shared_in_flight.take(),
            false => None,
        };
        if let Some(shared_in_flight) = shared_in_flight {
            for entry in inner.flow.outbound() {
                let Outbound::AwaitPubAck(p) = entry else {
                    continue;
                };
                let group = p.packet_id.and_then(|id| shared_in_flight.get(&id.get()));
                if let Some(group) = group {
                    let mut message = p.clone();
                    message.packet_id = None;
                    message.dup = false;
                    message.properties.subscription_identifiers.clear();
                    out.push((group.clone(), Arc::new(message), None));
                }
            }
        }
        out
    }

    /// Sends a message a departing member left to another member of its
    /// shared subscription group, as the group is now.
    fn redispatch(
        &self,
        group: &ShareGroup,
        message: Arc<Publish>,
        expires_at: Option<u64>,
        gone: SessionId,
    ) {
        let Some(group) = read(&self.router).group(&group.key) else {
            return;
        };
        let by_id = read(&self.by_id);
        let body_id = std::sync::OnceLock::new();
        let journal =
            (self.store.is_persistent() && message.qos != QoS::AtMostOnce).then_some(Journal {
                store: &*self.store,
                message: &body_id,
            });
        let mut routed = Routed::default();
        let acl = self.acl_set();
        let pick = Pick {
            message: &message,
            from: None,
            expires_at,
            journal,
            gone: Some(gone),
            acl: &acl,
        };
        self.deliver_shared(&group, &pick, &by_id, &mut routed);
    }

    /// Queues `pick.message` for one member of `group`, starting where the
    /// strategy says: members that are connected and have room first, then
    /// absent ones whose sessions queue it. Counted as refused if none can.
    fn deliver_shared(
        &self,
        group: &Arc<ShareGroup>,
        pick: &Pick<'_>,
        by_id: &HashMap<SessionId, Arc<Session>>,
        routed: &mut Routed,
    ) {
        let n = group.members.len();
        if n == 0 {
            return;
        }
        let start = match self.config.features.shared_subscription_strategy {
            SharedStrategy::RoundRobin => group.next.fetch_add(1, Ordering::Relaxed),
            SharedStrategy::Random => random() as usize,
            // The same member for one publisher while it can take them.
            SharedStrategy::Sticky => pick.from.map_or(0, |id| hash_u64(id) as usize),
        } % n;
        let limits = self.queue_limits();
        let mut full = false;
        for connected in [true, false] {
            for i in 0..n {
                let (id, sub) = &group.members[(start + i) % n];
                if Some(*id) == pick.gone {
                    continue;
                }
                let Some(session) = by_id.get(id) else {
                    continue;
                };
                if session.lock().owner.is_some() != connected {
                    continue;
                }
                let message = pick.message;
                let delivery = Delivery {
                    message: Body::Here(message.clone()),
                    // MQTT-4.8.2-3: the member's granted QoS.
                    qos: message.qos.min(sub.options.qos),
                    retain: message.retain && sub.options.retain_as_published,
                    identifiers: sub.identifier.into_iter().collect(),
                    expires_at: pick.expires_at,
                    stored: None,
                    seq: 0,
                    shared: Some(group.clone()),
                };
                match session.enqueue_checked(delivery, limits, pick.journal, Some(pick.acl)) {
                    Ok(queued) => {
                        routed.queued += 1;
                        routed.note(queued.seq);
                        self.count_evicted(session, queued.evicted);
                        return;
                    }
                    // A member the ACL does not let read it is skipped.
                    Err(Refused::Denied) => {}
                    Err(_) => full = true,
                }
            }
        }
        // Only members with full queues make it a refusal: a group whose
        // members may not read the topic did not want it.
        if full {
            routed.refused += 1;
            self.stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn remove_session(&self, session: &Arc<Session>) {
        let mut sessions = self.sessions();
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
        drop(sessions);
        self.discard(session);
    }

    /// Ends a session: its subscriptions leave the router, its queue
    /// empties. Returns the store op deleting it, if it was stored.
    fn discard(&self, session: &Session) -> Option<Seq> {
        let mut deleted = None;
        let will;
        let handed_on;
        let identity;
        let filters: Vec<TopicFilter> = {
            let mut inner = session.lock();
            inner.ended = true;
            will = inner.delayed_will.take();
            identity = inner.identity.clone();
            handed_on = self.hand_on_shared(session, &mut inner, true);
            inner.clear_queue();
            if std::mem::take(&mut inner.persistent) {
                deleted = Some(self.store.submit(Op::DeleteSession {
                    client_id: session.client_id.clone(),
                }));
            }
            std::mem::take(&mut inner.subscriptions)
                .into_keys()
                .collect()
        };
        let mut router = write(&self.router);
        for filter in filters {
            router.unsubscribe(&filter, session.id);
        }
        drop(router);
        write(&self.by_id).remove(&session.id);
        // MQTT-3.1.2-8 (5.0): a will still waiting out its delay goes when
        // the session ends.
        if let Some(will) = will {
            self.publish_will(session, identity.as_deref(), will.0.message.clone());
        }
        for (group, message, expires_at) in handed_on {
            self.redispatch(&group, message, expires_at, session.id);
        }
        deleted
    }

    /// Tells every connected client that the broker is going away (v5:
    /// DISCONNECT 0x8B). Connections that attach later see
    /// `shutting_down` themselves.
    pub fn kick_all(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        for session in sessions {
            session.kick(ReasonCode::SERVER_SHUTTING_DOWN);
        }
    }

    /// Lets the bodies of messages queued for absent persistent sessions
    /// go from memory once they are on disk (see [`Session::spill`]).
    pub fn spill_offline(&self) {
        if !self.store.is_persistent() {
            return;
        }
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        let spilled: usize = sessions.iter().map(|s| s.spill(&*self.store)).sum();
        self.stats
            .messages_spilled
            .fetch_add(spilled as u64, Ordering::Relaxed);
    }

    /// Publishes the wills whose delay has passed (MQTT-3.1.2-8 in 5.0),
    /// clearing each from its stored session in the same commit.
    pub fn publish_delayed_wills(&self, now: Instant) {
        let is_due = |s: &Session| {
            let inner = s.lock();
            inner.delayed_will.as_ref().is_some_and(|w| w.1 <= now)
        };
        let due: Vec<Arc<Session>> = self
            .sessions()
            .values()
            .filter(|s| is_due(s))
            .cloned()
            .collect();
        for session in due {
            let _group = Group::begin(&*self.store);
            let (will, identity) = {
                let mut inner = session.lock();
                let will = inner.delayed_will.take();
                if inner.persistent {
                    self.store.submit(Op::Session {
                        client_id: session.client_id.clone(),
                        expiry: inner.expiry,
                        disconnected_at: Some(unix_now()),
                        will: None,
                        identity: inner.identity.clone(),
                    });
                }
                (will, inner.identity.clone())
            };
            if let Some(will) = will {
                self.publish_will(&session, identity.as_deref(), will.0.message.clone());
            }
        }
    }

    /// Removes disconnected sessions whose expiry has passed.
    pub fn expire_sessions(&self, now: Instant) {
        let expired: Vec<Arc<Session>> = self
            .sessions()
            .values()
            .filter(|s| {
                let inner = s.lock();
                match (inner.owner.is_none(), inner.disconnected_at, inner.expiry) {
                    (true, Some(at), Some(secs)) => now >= at + Duration::from_secs(secs.into()),
                    _ => false,
                }
            })
            .cloned()
            .collect();
        for session in expired {
            tracing::debug!(client_id = %session.client_id, "session expired");
            self.remove_session(&session);
        }
    }

    /// Delivers a message to every matching subscription, and stores or
    /// clears it as retained if its RETAIN flag is set (MQTT-3.3.1-5, -6).
    ///
    /// A QoS 1/2 message for a persistent session is recorded in the store
    /// (its body once, an entry per session); while the store cannot write,
    /// such a message goes nowhere and `unstored` says so.
    pub fn publish(&self, message: Arc<Publish>, from: Option<SessionId>) -> Routed {
        let routes = read(&self.router).routes(&message.topic);
        let (targets, groups) = (routes.targets, routes.groups);
        let by_id = read(&self.by_id);
        let persistent = self.store.is_persistent();
        if persistent
            && !self.store.is_healthy()
            && needs_store(&message, &targets, &groups, &by_id)
        {
            return Routed {
                unstored: true,
                ..Routed::default()
            };
        }
        let mut routed = Routed::default();
        // MQTT-3.3.2-5 (5.0): the expiry counts from now.
        let expires_at = deadline(&message);
        if message.retain {
            routed.note(self.retain(&message, expires_at));
        }
        let body_id = std::sync::OnceLock::new();
        let journal = (persistent && message.qos != QoS::AtMostOnce).then_some(Journal {
            store: &*self.store,
            message: &body_id,
        });
        let limits = self.queue_limits();
        let acl = self.acl_set();
        for target in targets {
            if target.no_local && Some(target.session) == from {
                continue; // MQTT-3.8.3-3 (5.0)
            }
            let Some(session) = by_id.get(&target.session) else {
                continue;
            };
            let delivery = Delivery {
                message: Body::Here(message.clone()),
                qos: message.qos.min(target.qos),
                // MQTT-3.3.1-9 (3.1.1), MQTT-3.3.1-12/-13 (5.0): RETAIN is
                // cleared for established subscriptions unless Retain As
                // Published.
                retain: message.retain && target.retain_as_published,
                identifiers: target.identifiers,
                expires_at,
                stored: None,
                seq: 0,
                shared: None,
            };
            match session.enqueue_checked(delivery, limits, journal, Some(&acl)) {
                Ok(queued) => {
                    routed.queued += 1;
                    routed.note(queued.seq);
                    self.count_evicted(session, queued.evicted);
                }
                // Not for this subscriber: neither queued nor refused.
                Err(Refused::Denied) => {}
                Err(refused) => {
                    routed.refused += 1;
                    self.count_drop(session, refused);
                }
            }
        }
        for group in &groups {
            let pick = Pick {
                message: &message,
                from,
                expires_at,
                journal,
                gone: None,
                acl: &acl,
            };
            self.deliver_shared(group, &pick, &by_id, &mut routed);
        }
        routed
    }

    /// Counts a message a session's limits refused, and says so in the log
    /// the first time it happens to that session.
    fn count_drop(&self, session: &Session, refused: Refused) {
        self.stats.messages_dropped.fetch_add(1, Ordering::Relaxed);
        // Check and set under one lock, so two publishers cannot both log.
        let first = refused == Refused::QueueFull
            && !std::mem::replace(&mut session.lock().warned_full, true);
        if first {
            tracing::warn!(
                client_id = %session.client_id,
                limit = self.config.limits.max_queued_messages,
                "message queue full: dropping messages for this client (QoS 0 first); \
                 raise limits.max_queued_messages or check the client (logged once per session)"
            );
        }
    }

    /// Counts QoS 0 messages a full queue dropped to make room.
    fn count_evicted(&self, session: &Session, evicted: u64) {
        if evicted > 0 {
            self.count_drop(session, Refused::QueueFull);
            self.stats
                .messages_dropped
                .fetch_add(evicted - 1, Ordering::Relaxed);
        }
    }

    /// Sets or clears a retained message; returns the store op doing it.
    fn retain(&self, message: &Arc<Publish>, expires_at: Option<u64>) -> Option<Seq> {
        let mut retained = write(&self.retained);
        let op = if message.payload.is_empty() {
            // MQTT-3.3.1-6 (3.1.1) / MQTT-3.3.1-6 (5.0): an empty payload
            // removes the retained message and is not stored.
            retained.remove(&message.topic);
            Op::Unretain {
                topic: message.topic.clone(),
            }
        } else {
            retained.insert(message.topic.clone(), (message.clone(), expires_at));
            Op::Retain {
                message: message.clone(),
                expires_at,
            }
        };
        // Submitted under the lock, so the store sees changes to one topic
        // in the order they were made. `$SYS` is made anew every interval:
        // not worth a write.
        let keep = self.store.is_persistent() && !message.topic.as_str().starts_with("$SYS");
        keep.then(|| self.store.submit(op))
    }

    /// Drops retained messages whose expiry has passed (MQTT-3.3.2-5 in
    /// 5.0), from the store too.
    pub fn expire_retained(&self) {
        let now = unix_millis();
        let expired = |at: &Option<u64>| at.is_some_and(|at| at <= now);
        // Looked for under the read lock: publishers are not held up by a
        // sweep that finds nothing.
        if !read(&self.retained).values().any(|(_, at)| expired(at)) {
            return;
        }
        let mut retained = write(&self.retained);
        let before = retained.len();
        retained.retain(|topic, (_, at)| {
            let keep = !expired(at);
            if !keep && self.store.is_persistent() {
                self.store.submit(Op::Unretain {
                    topic: topic.clone(),
                });
            }
            keep
        });
        if retained.len() < before {
            tracing::debug!(
                expired = before - retained.len(),
                "retained messages expired"
            );
        }
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        read(&self.retained).len()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        read(&self.router).len()
    }

    /// Number of sessions (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    /// Adds a subscription; returns whether it replaced one, and the store
    /// op recording it for a persistent session.
    pub fn subscribe(
        &self,
        session: &Session,
        filter: TopicFilter,
        sub: Subscription,
    ) -> (bool, Option<Seq>) {
        let existed = write(&self.router).subscribe(&filter, session.id, sub);
        let mut inner = session.lock();
        let seq = inner.persistent.then(|| {
            self.store.submit(Op::Subscribe {
                client_id: session.client_id.clone(),
                filter: filter.clone(),
                subscription: sub,
            })
        });
        inner.subscriptions.insert(filter, sub);
        (existed, seq)
    }

    /// Removes a subscription; returns whether it existed, and the store op
    /// recording it for a persistent session.
    pub fn unsubscribe(&self, session: &Session, filter: &TopicFilter) -> (bool, Option<Seq>) {
        let existed = write(&self.router).unsubscribe(filter, session.id);
        let mut inner = session.lock();
        let seq = inner.persistent.then(|| {
            self.store.submit(Op::Unsubscribe {
                client_id: session.client_id.clone(),
                filter: filter.clone(),
            })
        });
        inner.subscriptions.remove(filter);
        (existed, seq)
    }

    /// Queues the retained messages matching `filter` for `session`, with
    /// RETAIN set (MQTT-3.3.1-8 in 3.1.1, MQTT-3.3.1-8 in 5.0).
    pub fn send_retained(
        &self,
        session: &Session,
        filter: &TopicFilter,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) {
        let now = unix_millis();
        let matching: Vec<Expiring> = read(&self.retained)
            .iter()
            // MQTT-3.3.2-5 (5.0): an expired retained message is not sent.
            .filter(|(topic, (_, at))| filter.matches(topic) && at.is_none_or(|at| at > now))
            .map(|(_, m)| m.clone())
            .collect();
        let limits = QueueLimits {
            qos0_offline: true,
            ..self.queue_limits()
        };
        let acl = self.acl_set();
        for (message, expires_at) in matching {
            let body_id = std::sync::OnceLock::new();
            let journal = self.store.is_persistent().then_some(Journal {
                store: &*self.store,
                message: &body_id,
            });
            let delivery = Delivery {
                qos: message.qos.min(options.qos),
                message: Body::Here(message),
                retain: true,
                identifiers: id.into_iter().collect(),
                expires_at,
                stored: None,
                seq: 0,
                shared: None,
            };
            // Catalogue AU4: a retained message goes only where its topic
            // may be read now.
            match session.enqueue_checked(delivery, limits, journal, Some(&acl)) {
                Ok(queued) => self.count_evicted(session, queued.evicted),
                Err(Refused::Denied) => {}
                Err(refused) => self.count_drop(session, refused),
            }
        }
    }

    /// The store, for connections recording their state.
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The highest QoS the broker accepts and grants.
    pub fn maximum_qos(&self) -> QoS {
        self.config.maximum_qos()
    }
}

/// Whether acknowledging `message` would need the store: it is QoS 1/2,
/// and retained or for a persistent session that takes QoS 1/2. (QoS 0 is
/// never acknowledged, so it flows whatever the store's health.)
fn needs_store(
    message: &Publish,
    targets: &[crate::router::Target],
    groups: &[Arc<ShareGroup>],
    by_id: &HashMap<SessionId, Arc<Session>>,
) -> bool {
    let persistent = |id: &SessionId| by_id.get(id).is_some_and(|s| s.lock().persistent);
    let members = groups.iter().flat_map(|g| g.members.iter());
    message.qos != QoS::AtMostOnce
        && (message.retain
            || targets
                .iter()
                .any(|t| t.qos != QoS::AtMostOnce && persistent(&t.session))
            || members
                .into_iter()
                .any(|(id, sub)| sub.options.qos != QoS::AtMostOnce && persistent(id)))
}

/// Milliseconds since the Unix epoch: message expiry deadlines are kept in
/// wall-clock time, so they hold across restarts.
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// When `message` expires, from its Message Expiry Interval.
fn deadline(message: &Publish) -> Option<u64> {
    let secs = message.properties.message_expiry_interval?;
    Some(unix_millis() + u64::from(secs) * 1000)
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Puts one recovered entry where it was: back in the queue, or in flight
/// with its packet identifier (a QoS 2 message sent, or released).
fn restore_entry(
    inner: &mut crate::session::Inner,
    outbound: &mut Vec<Outbound>,
    entry: RecoveredEntry,
) {
    match (entry.state, entry.message) {
        (EntryState::Queued, _) | (EntryState::Sent(_), None) => {
            inner.push_recovered(Delivery {
                message: Body::OnDisk {
                    payload_len: entry.payload_len,
                },
                qos: entry.qos,
                retain: entry.retain,
                identifiers: entry.identifiers,
                // Stored with the body, read when it is sent.
                expires_at: None,
                stored: Some(entry.stored),
                seq: 0,
                shared: None,
            });
        }
        (EntryState::Sent(packet_id), Some(message)) => {
            let mut publish = Publish::clone(&message);
            publish.qos = entry.qos;
            publish.retain = entry.retain;
            publish.packet_id = Some(packet_id);
            if !entry.identifiers.is_empty() {
                publish.properties.subscription_identifiers = entry.identifiers;
            }
            outbound.push(Outbound::AwaitPubRec(publish));
            inner.note_in_flight(packet_id.get(), entry.stored);
        }
        (EntryState::Received(packet_id), _) => {
            outbound.push(Outbound::AwaitPubComp(packet_id));
            inner.note_in_flight(packet_id.get(), entry.stored);
        }
    }
}
