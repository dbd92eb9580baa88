//! The blocking client, in paho-mqtt's shape: `connect`, `loop_start` /
//! `loop_forever`, `publish` returning a [`MessageInfo`], `subscribe`, and
//! callbacks (`on_connect`, `on_message`, …) with paho 2.x's version-2
//! arguments (reason codes and properties).
//!
//! It runs an [`AsyncClient`] on a small tokio runtime of its own.
//! Callbacks run on the loop's thread (the one `loop_start` starts, or the
//! caller of `loop_forever`); requests from a callback (publish,
//! subscribe, disconnect) are queued without waiting, so a callback never
//! deadlocks the client, paho's long-standing complaint.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use pigeon_proto::codec::Publish;
use pigeon_proto::properties::Properties;
use pigeon_proto::topic::{TopicFilter, TopicName};
use pigeon_proto::{Protocol, QoS, ReasonCode};

use crate::asynchronous::{AsyncClient, ClientError, Event, Events, Message, MessageId};
use crate::options::Options;

/// CONNACK's flags, as paho's `ConnectFlags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectFlags {
    /// The broker kept the session.
    pub session_present: bool,
}

type Callback<F> = Option<Arc<F>>;
type OnConnect = dyn Fn(&Client, ConnectFlags, ReasonCode, &Properties) + Send + Sync;
type OnConnectFail = dyn Fn(&Client, &ClientError) + Send + Sync;
type OnDisconnect = dyn Fn(&Client, Option<ReasonCode>) + Send + Sync;
type OnMessage = dyn Fn(&Client, &Message) + Send + Sync;
type OnPublish = dyn Fn(&Client, MessageId, ReasonCode) + Send + Sync;
type OnSubscribe = dyn Fn(&Client, MessageId, &[ReasonCode]) + Send + Sync;
type OnLog = dyn Fn(&Client, &str) + Send + Sync;

#[derive(Default)]
struct Callbacks {
    on_connect: Callback<OnConnect>,
    on_connect_fail: Callback<OnConnectFail>,
    on_disconnect: Callback<OnDisconnect>,
    on_message: Callback<OnMessage>,
    on_publish: Callback<OnPublish>,
    on_subscribe: Callback<OnSubscribe>,
    on_unsubscribe: Callback<OnSubscribe>,
    on_log: Callback<OnLog>,
    /// `message_callback_add`: tried before `on_message`.
    filters: Vec<(TopicFilter, Arc<OnMessage>)>,
}

struct Shared {
    /// Always `Some` until dropped (taken in `Drop`).
    runtime: Option<tokio::runtime::Runtime>,
    options: Mutex<Options>,
    client: Mutex<Option<AsyncClient>>,
    events: Mutex<Option<Events>>,
    /// A first event taken by `connect` (which waits for CONNACK), for the
    /// loop to hand to `on_connect`.
    replay: Mutex<Vec<Event>>,
    callbacks: RwLock<Callbacks>,
    looping: Mutex<Option<JoinHandle<()>>>,
    stop_loop: std::sync::atomic::AtomicBool,
    /// With a session store and automatic acknowledgements, a message
    /// leaves the store's inbox once `on_message` has returned (so one
    /// whose callback was cut short by a crash is delivered again).
    ack_after_callback: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn rt(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .unwrap_or_else(|| unreachable!("the runtime lives as long as the client"))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which tokio
        // forbids inside async code: there the runtime goes in the
        // background. Elsewhere the connection task gets a moment to stop,
        // so the session store's file is closed when the client is gone.
        if let Some(runtime) = self.runtime.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(_) => runtime.shutdown_background(),
                Err(_) => runtime.shutdown_timeout(Duration::from_secs(1)),
            }
        }
    }
}

/// A blocking MQTT client with paho's methods and callbacks. Clones share
/// the client; it is `Send + Sync`, so any thread may publish.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a publish's result lands, and the signal that it has.
type Outcome = Arc<(Mutex<Option<Result<ReasonCode, ClientError>>>, Condvar)>;

/// The outcome of one `publish`, as paho's `MQTTMessageInfo`.
#[derive(Debug, Clone)]
pub struct MessageInfo {
    /// The request's id (`mid`), as `on_publish` reports it.
    pub mid: MessageId,
    state: Outcome,
}

impl MessageInfo {
    fn done(mid: MessageId, result: Result<ReasonCode, ClientError>) -> MessageInfo {
        MessageInfo {
            mid,
            state: Arc::new((Mutex::new(Some(result)), Condvar::new())),
        }
    }

    /// Waits until the message is complete for its QoS (or `timeout`
    /// passes); the result, if it came.
    pub fn wait_for_publish(&self, timeout: Duration) -> Option<Result<ReasonCode, ClientError>> {
        let (result, ready) = &*self.state;
        let guard = lock(result);
        let (guard, _) = ready
            .wait_timeout_while(guard, timeout, |r| r.is_none())
            .unwrap_or_else(|e| e.into_inner());
        guard.clone()
    }

    /// Whether the message is complete and the broker accepted it.
    pub fn is_published(&self) -> bool {
        matches!(&*lock(&self.state.0), Some(Ok(code)) if !code.is_error())
    }
}

impl Client {
    /// A client with `client_id` (empty: the broker assigns one) speaking
    /// `protocol`, as paho's `Client(client_id=…, protocol=…)`. Connect
    /// with [`Client::connect`].
    pub fn new(client_id: &str, protocol: Protocol) -> Client {
        Client::with_options(
            Options::new("localhost", 1883)
                .client_id(client_id)
                .protocol(protocol),
        )
    }

    /// A client with every option set (host and port are taken from
    /// `connect`'s arguments when it is called with them).
    pub fn with_options(options: Options) -> Client {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pigeon-client")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the client's runtime: {e}"));
        Client {
            shared: Arc::new(Shared {
                runtime: Some(runtime),
                options: Mutex::new(options),
                client: Mutex::new(None),
                events: Mutex::new(None),
                replay: Mutex::new(Vec::new()),
                callbacks: RwLock::new(Callbacks::default()),
                looping: Mutex::new(None),
                stop_loop: std::sync::atomic::AtomicBool::new(false),
                ack_after_callback: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Changes options before `connect` (paho's `username_pw_set`,
    /// `will_set`, `reconnect_delay_set`, … in one place).
    pub fn options(&self, change: impl FnOnce(&mut Options)) {
        change(&mut lock(&self.shared.options));
    }

    /// paho's `username_pw_set`.
    pub fn username_pw_set(&self, username: &str, password: Option<&str>) {
        self.options(|o| {
            o.username = Some(username.to_owned());
            o.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
        });
    }

    /// paho's `will_set`.
    pub fn will_set(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), ClientError> {
        let topic =
            TopicName::try_from(topic).map_err(|e| ClientError::InvalidTopic(e.to_string()))?;
        let payload = payload.into();
        self.options(|o| {
            o.will = Some(pigeon_proto::codec::Will {
                topic,
                payload,
                qos,
                retain,
                properties: Properties::default(),
            });
        });
        Ok(())
    }

    /// paho's `reconnect_delay_set(min_delay, max_delay)`, in seconds.
    pub fn reconnect_delay_set(&self, min_delay: u64, max_delay: u64) {
        self.options(|o| {
            let jitter = o.reconnect.map_or(0.5, |b| b.jitter);
            o.reconnect = Some(crate::options::Backoff {
                min: Duration::from_secs(min_delay),
                max: Duration::from_secs(max_delay.max(min_delay)),
                jitter,
            });
        });
    }

    /// paho's `tls_set(ca_certs, certfile, keyfile)`: connect over TLS,
    /// trusting the CA certificates in `ca_certs` (PEM; `None`: the
    /// system's), with a client certificate if `certfile` and `keyfile` are
    /// given. A file that cannot be read fails `connect` with
    /// `ClientError::Tls`.
    pub fn tls_set(&self, ca_certs: Option<&str>, certfile: Option<&str>, keyfile: Option<&str>) {
        self.options(|o| {
            let mut tls = std::mem::take(&mut o.tls);
            tls.ca_file = ca_certs.map(Into::into);
            tls.client_cert = certfile.zip(keyfile).map(|(c, k)| (c.into(), k.into()));
            *o = std::mem::replace(o, Options::new("", 0)).tls(tls);
        });
    }

    /// paho's `tls_insecure_set(True)`: accept a broker certificate that is
    /// not for the host name (its chain is still verified).
    pub fn tls_insecure_set(&self, insecure: bool) {
        self.options(|o| o.tls.insecure = insecure);
    }

    /// paho's `ws_set_options(path, headers)`; also switches to the
    /// WebSocket transport (paho's `transport="websockets"`).
    pub fn ws_set_options(&self, path: &str, headers: &[(&str, &str)]) {
        self.options(|o| {
            let mut taken = std::mem::replace(o, Options::new("", 0)).websocket(path);
            for (name, value) in headers {
                taken = taken.ws_header(name, value);
            }
            *o = taken;
        });
    }

    /// paho's `max_inflight_messages_set`.
    pub fn max_inflight_messages_set(&self, inflight: u16) {
        self.options(|o| o.max_inflight = inflight.max(1));
    }

    /// paho's `max_queued_messages_set` (0 in paho means unbounded; here it
    /// means the default bound).
    pub fn max_queued_messages_set(&self, queue_size: usize) {
        self.options(|o| {
            if queue_size > 0 {
                o.max_queued = queue_size;
            }
        });
    }

    fn callbacks(&self) -> std::sync::RwLockWriteGuard<'_, Callbacks> {
        self.shared
            .callbacks
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `on_connect(client, flags, reason_code, properties)`.
    pub fn on_connect(
        &self,
        f: impl Fn(&Client, ConnectFlags, ReasonCode, &Properties) + Send + Sync + 'static,
    ) {
        self.callbacks().on_connect = Some(Arc::new(f));
    }

    /// `on_connect_fail(client, error)`: a connection attempt failed.
    pub fn on_connect_fail(&self, f: impl Fn(&Client, &ClientError) + Send + Sync + 'static) {
        self.callbacks().on_connect_fail = Some(Arc::new(f));
    }

    /// `on_disconnect(client, reason_code)`: `None` when the network
    /// connection was lost.
    pub fn on_disconnect(&self, f: impl Fn(&Client, Option<ReasonCode>) + Send + Sync + 'static) {
        self.callbacks().on_disconnect = Some(Arc::new(f));
    }

    /// `on_message(client, message)`, for messages no filter callback took.
    pub fn on_message(&self, f: impl Fn(&Client, &Message) + Send + Sync + 'static) {
        self.callbacks().on_message = Some(Arc::new(f));
    }

    /// `on_publish(client, mid, reason_code)`.
    pub fn on_publish(&self, f: impl Fn(&Client, MessageId, ReasonCode) + Send + Sync + 'static) {
        self.callbacks().on_publish = Some(Arc::new(f));
    }

    /// `on_subscribe(client, mid, reason_codes)`.
    pub fn on_subscribe(
        &self,
        f: impl Fn(&Client, MessageId, &[ReasonCode]) + Send + Sync + 'static,
    ) {
        self.callbacks().on_subscribe = Some(Arc::new(f));
    }

    /// `on_unsubscribe(client, mid, reason_codes)`.
    pub fn on_unsubscribe(
        &self,
        f: impl Fn(&Client, MessageId, &[ReasonCode]) + Send + Sync + 'static,
    ) {
        self.callbacks().on_unsubscribe = Some(Arc::new(f));
    }

    /// `on_log(client, text)`: each packet sent and received ("Sending
    /// PUBLISH (d0, q1, r0, m3, 'a/b', ... (5 bytes))", "Received PUBACK
    /// (Mid: 3, RC:0)") and failed connection attempts. Set it before
    /// `connect`.
    pub fn on_log(&self, f: impl Fn(&Client, &str) + Send + Sync + 'static) {
        self.callbacks().on_log = Some(Arc::new(f));
    }

    /// Messages whose topic matches `filter` go to `f` instead of
    /// `on_message` (paho's `message_callback_add`).
    pub fn message_callback_add(
        &self,
        filter: &str,
        f: impl Fn(&Client, &Message) + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        let filter =
            TopicFilter::try_from(filter).map_err(|e| ClientError::InvalidTopic(e.to_string()))?;
        let mut callbacks = self.callbacks();
        callbacks
            .filters
            .retain(|(existing, _)| existing != &filter);
        callbacks.filters.push((filter, Arc::new(f)));
        Ok(())
    }

    /// Removes a `message_callback_add` callback.
    pub fn message_callback_remove(&self, filter: &str) {
        self.callbacks()
            .filters
            .retain(|(f, _)| f.as_str() != filter);
    }

    /// Connects to `host:port` and waits for the broker's answer; `Err` if
    /// it cannot be reached or refuses. `on_connect` runs once the loop
    /// runs. Afterwards the client reconnects by itself.
    pub fn connect(&self, host: &str, port: u16, keep_alive: u64) -> Result<(), ClientError> {
        let mut events = self.start(host, port, keep_alive);
        // Packet log lines, and messages a session store delivers again,
        // may come before the answer: the loop hands them over in order.
        let mut before = Vec::new();
        let result = loop {
            let event = self.shared.rt().block_on(events.recv());
            let result = match &event {
                Some(Event::Connected { .. }) => Ok(()),
                Some(Event::ConnectFailed(e)) => Err(e.clone()),
                Some(_) => {
                    before.extend(event);
                    continue;
                }
                None => Err(ClientError::Disconnected),
            };
            before.extend(event);
            break result;
        };
        if result.is_err() {
            // paho raises and stays disconnected: stop the retries.
            if let Some(client) = lock(&self.shared.client).take() {
                let _ = client.start_disconnect();
            }
        } else {
            *lock(&self.shared.replay) = before;
        }
        *lock(&self.shared.events) = Some(events);
        result
    }

    /// Connects in the background; the loop reports the outcome through
    /// `on_connect` or `on_connect_fail`.
    pub fn connect_async(&self, host: &str, port: u16, keep_alive: u64) {
        let events = self.start(host, port, keep_alive);
        *lock(&self.shared.events) = Some(events);
    }

    fn start(&self, host: &str, port: u16, keep_alive: u64) -> Events {
        let mut options = lock(&self.shared.options).clone();
        options.host = host.to_owned();
        options.port = port;
        options.keep_alive = Duration::from_secs(keep_alive);
        // paho's on_log hears every packet; without one, none is described.
        options.log_packets |= self
            .shared
            .callbacks
            .read()
            .is_ok_and(|c| c.on_log.is_some());
        let after_callback = options.session_store.is_some() && !options.manual_acks;
        options.manual_acks |= after_callback;
        self.shared
            .ack_after_callback
            .store(after_callback, std::sync::atomic::Ordering::Relaxed);
        let _enter = self.shared.rt().enter();
        let (client, events) = AsyncClient::new(options);
        if let Some(old) = lock(&self.shared.client).replace(client) {
            let _ = old.start_disconnect();
        }
        events
    }

    fn client(&self) -> Result<AsyncClient, ClientError> {
        lock(&self.shared.client)
            .clone()
            .ok_or(ClientError::Disconnected)
    }

    /// Publishes; never waits. The [`MessageInfo`] tells when the message
    /// is complete for its QoS.
    pub fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> MessageInfo {
        let started = self
            .client()
            .and_then(|c| c.start_publish(topic, qos, retain, payload));
        self.track(started)
    }

    /// Publishes a message built by the caller (v5 properties and all).
    pub fn publish_message(&self, message: Publish) -> MessageInfo {
        let started = self.client().and_then(|c| c.publish_message(message));
        self.track(started)
    }

    fn track(&self, started: Result<crate::asynchronous::Publication, ClientError>) -> MessageInfo {
        let publication = match started {
            Ok(p) => p,
            Err(e) => return MessageInfo::done(0, Err(e)),
        };
        let (mid, done) = publication.split();
        let info = MessageInfo {
            mid,
            state: Arc::new((Mutex::new(None), Condvar::new())),
        };
        let state = info.state.clone();
        self.shared.rt().spawn(async move {
            let result = done.await.unwrap_or(Err(ClientError::Disconnected));
            let (slot, ready) = &*state;
            *lock(slot) = Some(result);
            ready.notify_all();
        });
        info
    }

    /// Subscribes; never waits. `on_subscribe` gets the broker's codes
    /// with the returned id.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<MessageId, ClientError> {
        let options = pigeon_proto::codec::SubscriptionOptions {
            qos,
            ..Default::default()
        };
        let (mid, _) = self
            .client()?
            .start_subscribe(&[(filter, options)], Properties::default())?;
        Ok(mid)
    }

    /// Subscribes to several filters at once with their options and v5
    /// properties (a Subscription Identifier, user properties); never waits.
    pub fn subscribe_with(
        &self,
        filters: &[(&str, pigeon_proto::codec::SubscriptionOptions)],
        properties: Properties,
    ) -> Result<MessageId, ClientError> {
        let (mid, _) = self.client()?.start_subscribe(filters, properties)?;
        Ok(mid)
    }

    /// Unsubscribes; never waits (`on_unsubscribe` follows).
    pub fn unsubscribe(&self, filter: &str) -> Result<MessageId, ClientError> {
        let (mid, _) = self.client()?.start_unsubscribe(&[filter])?;
        Ok(mid)
    }

    /// Acknowledges a message when `Options::manual_acks` is on.
    pub fn ack(&self, message: &Message) -> Result<(), ClientError> {
        self.client()?.ack(message)
    }

    /// Sends DISCONNECT and stops the client; `loop_forever` returns.
    /// Never waits, so a callback may call it.
    pub fn disconnect(&self) -> Result<(), ClientError> {
        let client = lock(&self.shared.client)
            .take()
            .ok_or(ClientError::Disconnected)?;
        client.start_disconnect().map(|_| ())
    }

    /// Runs the callbacks on a background thread (paho's `loop_start`).
    pub fn loop_start(&self) {
        let mut looping = lock(&self.shared.looping);
        if looping.is_some() {
            return;
        }
        self.shared
            .stop_loop
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let me = self.clone();
        let thread = std::thread::Builder::new()
            .name("pigeon-client-loop".into())
            .spawn(move || me.loop_forever())
            .unwrap_or_else(|e| panic!("cannot start the client's loop thread: {e}"));
        *looping = Some(thread);
    }

    /// Stops the `loop_start` thread (the connection stays; call
    /// `disconnect` first to end it).
    pub fn loop_stop(&self) {
        self.shared
            .stop_loop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let thread = lock(&self.shared.looping).take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    /// Runs the callbacks on this thread until the client is disconnected
    /// (paho's `loop_forever`).
    pub fn loop_forever(&self) {
        let replay = std::mem::take(&mut *lock(&self.shared.replay));
        for event in replay {
            self.dispatch(event);
        }
        loop {
            if self
                .shared
                .stop_loop
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            let next = {
                let mut events = lock(&self.shared.events);
                let Some(events) = events.as_mut() else {
                    return;
                };
                // Woken every 100 ms to look at the stop flag.
                let wait =
                    async { tokio::time::timeout(Duration::from_millis(100), events.recv()).await };
                self.shared.rt().block_on(wait)
            };
            match next {
                Ok(Some(event)) => self.dispatch(event),
                Ok(None) => return,
                Err(_) => {} // look at the stop flag again
            }
        }
    }

    fn dispatch(&self, event: Event) {
        let callbacks = self
            .shared
            .callbacks
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Connected {
                session_present,
                connack,
            } => {
                if let Some(f) = callbacks.on_connect.clone() {
                    drop(callbacks);
                    f(
                        self,
                        ConnectFlags { session_present },
                        connack.reason_code,
                        &connack.properties,
                    );
                }
            }
            Event::ConnectFailed(e) => {
                if let Some(f) = callbacks.on_log.clone() {
                    f(self, &format!("connection failed: {e}"));
                }
                if let Some(f) = callbacks.on_connect_fail.clone() {
                    drop(callbacks);
                    f(self, &e);
                }
            }
            Event::Message(message) => {
                let topic = message.topic.clone();
                let matching: Vec<Arc<OnMessage>> = callbacks
                    .filters
                    .iter()
                    .filter(|(f, _)| f.matches(&topic))
                    .map(|(_, cb)| cb.clone())
                    .collect();
                let fallback = callbacks.on_message.clone();
                drop(callbacks);
                if matching.is_empty() {
                    if let Some(f) = fallback {
                        f(self, &message);
                    }
                }
                for f in matching {
                    f(self, &message);
                }
                let after = &self.shared.ack_after_callback;
                if after.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = self.ack(&message);
                }
            }
            Event::Published { mid, reason_code } => {
                if let Some(f) = callbacks.on_publish.clone() {
                    drop(callbacks);
                    f(self, mid, reason_code);
                }
            }
            Event::Subscribed { mid, reason_codes } => {
                if let Some(f) = callbacks.on_subscribe.clone() {
                    drop(callbacks);
                    f(self, mid, &reason_codes);
                }
            }
            Event::Unsubscribed { mid, reason_codes } => {
                if let Some(f) = callbacks.on_unsubscribe.clone() {
                    drop(callbacks);
                    f(self, mid, &reason_codes);
                }
            }
            Event::Log(line) => {
                if let Some(f) = callbacks.on_log.clone() {
                    drop(callbacks);
                    f(self, &line);
                }
            }
            Event::Disconnected { reason_code, .. } => {
                if let Some(f) = callbacks.on_disconnect.clone() {
                    drop(callbacks);
                    f(self, reason_code);
                }
            }
        }
    }
}

/// Whether `topic` matches the subscription `filter` (paho's
/// `topic_matches_sub`); `false` if either is not valid.
pub fn topic_matches_sub(filter: &str, topic: &str) -> bool {
    match (TopicFilter::try_from(filter), TopicName::try_from(topic)) {
        (Ok(f), Ok(t)) => f.matches(&t),
        _ => false,
    }
}

/// Connects, publishes one message, waits until it is complete for its
/// QoS and disconnects (paho's `publish.single`).
pub fn publish_single(
    topic: &str,
    payload: impl Into<Bytes>,
    qos: QoS,
    retain: bool,
    host: &str,
    port: u16,
) -> Result<ReasonCode, ClientError> {
    let client = Client::with_options(Options::new(host, port).reconnect(None));
    client.connect(host, port, 60)?;
    let info = client.publish(topic, payload, qos, retain);
    let result = info
        .wait_for_publish(Duration::from_secs(30))
        .unwrap_or(Err(ClientError::Disconnected));
    let _ = client.disconnect();
    result
}

/// Connects, subscribes to `filter`, returns the first `count` messages
/// (retained ones included) and disconnects (paho's `subscribe.simple`).
pub fn subscribe_simple(
    filter: &str,
    qos: QoS,
    count: usize,
    host: &str,
    port: u16,
) -> Result<Vec<Message>, ClientError> {
    let client = Client::with_options(Options::new(host, port).reconnect(None));
    let (tx, rx) = std::sync::mpsc::channel();
    client.on_message(move |_, m| {
        let _ = tx.send(m.clone());
    });
    client.connect(host, port, 60)?;
    client.subscribe(filter, qos)?;
    client.loop_start();
    let messages: Vec<Message> = rx.iter().take(count).collect();
    let _ = client.disconnect();
    client.loop_stop();
    Ok(messages)
}
