//! State shared by all connections: the session registry, the router, the
//! retained messages and the counters, and the operations on them that a
//! connection needs (attach a session, route a message, subscribe).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pigeon_proto::codec::{Publish, SubscriptionOptions};
use pigeon_proto::flow::SessionState;
use pigeon_proto::topic::{TopicFilter, TopicName};
use pigeon_proto::{QoS, ReasonCode};
use tokio::sync::Notify;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::router::{Router, SessionId, Subscription};
use crate::session::{Delivery, Owner, QueueLimits, Refused, Session};
use crate::store::Store;

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
}

/// Where a published message went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Routed {
    /// Sessions it was queued for.
    pub queued: usize,
    /// Sessions whose limits refused it.
    pub refused: usize,
}

/// What a connection gets when it attaches to a session.
#[derive(Debug)]
pub(crate) struct Attached {
    pub session: Arc<Session>,
    pub present: bool,
    pub flow: SessionState,
    pub generation: u64,
}

/// The broker's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub started: Instant,
    pub stats: Stats,
    router: RwLock<Router>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    by_id: RwLock<HashMap<SessionId, Arc<Session>>>,
    retained: RwLock<HashMap<TopicName, Arc<Publish>>>,
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
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(config: Config, store: Box<dyn Store>, auth: Box<dyn Authenticator>) -> Shared {
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
    ) -> Attached {
        let existing = self.sessions().get(client_id).cloned();
        if let Some(old) = &existing {
            self.kick_and_wait(old).await;
        }
        let mut sessions = self.sessions();
        let resume = match sessions.get(client_id) {
            Some(s) if !clean_start && !s.lock().ended => Some(s.clone()),
            Some(s) => {
                let s = s.clone();
                drop(sessions);
                self.discard(&s);
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
        let flow = {
            let mut inner = session.lock();
            inner.owner = Some(Owner {
                generation,
                kick: None,
            });
            inner.expiry = expiry;
            inner.disconnected_at = None;
            std::mem::take(&mut inner.flow)
        };
        Attached {
            session,
            present,
            flow,
            generation,
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

    /// A connection lets go of its session, leaving its protocol state.
    /// Returns whether the session ends with the connection (expiry 0).
    pub fn release(&self, session: &Arc<Session>, generation: u64, flow: SessionState) -> bool {
        let ends = {
            let mut inner = session.lock();
            if inner.owner.as_ref().map(|o| o.generation) != Some(generation) {
                return false;
            }
            inner.owner = None;
            inner.flow = flow;
            inner.disconnected_at = Some(Instant::now());
            inner.expiry == Some(0)
        };
        if ends {
            self.remove_session(session);
        }
        self.released.notify_waiters();
        ends
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

    /// Ends a session: its subscriptions leave the router, its queue empties.
    fn discard(&self, session: &Session) {
        let filters: Vec<TopicFilter> = {
            let mut inner = session.lock();
            inner.ended = true;
            inner.clear_queue();
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
    pub fn publish(&self, message: Arc<Publish>, from: Option<SessionId>) -> Routed {
        if message.retain {
            self.retain(&message);
        }
        let targets = read(&self.router).route(&message.topic);
        let by_id = read(&self.by_id);
        let limits = self.queue_limits();
        let mut routed = Routed::default();
        for target in targets {
            if target.no_local && Some(target.session) == from {
                continue; // MQTT-3.8.3-3 (5.0)
            }
            let Some(session) = by_id.get(&target.session) else {
                continue;
            };
            let delivery = Delivery {
                message: message.clone(),
                qos: message.qos.min(target.qos),
                // MQTT-3.3.1-9 (3.1.1), MQTT-3.3.1-12/-13 (5.0): RETAIN is
                // cleared for established subscriptions unless Retain As
                // Published.
                retain: message.retain && target.retain_as_published,
                identifiers: target.identifiers,
            };
            match session.enqueue(delivery, limits) {
                Ok(()) => routed.queued += 1,
                Err(refused) => {
                    routed.refused += 1;
                    self.count_drop(session, refused);
                }
            }
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

    fn retain(&self, message: &Arc<Publish>) {
        let mut retained = write(&self.retained);
        if message.payload.is_empty() {
            // MQTT-3.3.1-6 (3.1.1) / MQTT-3.3.1-6 (5.0): an empty payload
            // removes the retained message and is not stored.
            retained.remove(&message.topic);
            self.store.remove_retained(&message.topic);
        } else {
            retained.insert(message.topic.clone(), message.clone());
            self.store.put_retained(message);
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

    /// Adds a subscription; returns whether it replaced one.
    pub fn subscribe(&self, session: &Session, filter: TopicFilter, sub: Subscription) -> bool {
        let existed = write(&self.router).subscribe(&filter, session.id, sub);
        session.lock().subscriptions.insert(filter, sub);
        existed
    }

    /// Removes a subscription; returns whether it existed.
    pub fn unsubscribe(&self, session: &Session, filter: &TopicFilter) -> bool {
        let existed = write(&self.router).unsubscribe(filter, session.id);
        session.lock().subscriptions.remove(filter);
        existed
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
        let matching: Vec<Arc<Publish>> = read(&self.retained)
            .iter()
            .filter(|(topic, _)| filter.matches(topic))
            .map(|(_, m)| m.clone())
            .collect();
        let limits = QueueLimits {
            qos0_offline: true,
            ..self.queue_limits()
        };
        for message in matching {
            let delivery = Delivery {
                qos: message.qos.min(options.qos),
                message,
                retain: true,
                identifiers: id.into_iter().collect(),
            };
            if let Err(refused) = session.enqueue(delivery, limits) {
                self.count_drop(session, refused);
            }
        }
    }

    /// The store's mode, for the start-up line.
    pub fn store_mode(&self) -> &'static str {
        self.store.mode()
    }

    /// The highest QoS the broker grants.
    pub fn maximum_qos(&self) -> QoS {
        QoS::ExactlyOnce
    }
}
