//! Starting and stopping the broker: the accept loop, the connection cap,
//! the periodic tasks, and a graceful shutdown that tells every connection
//! to close (v5 clients get DISCONNECT 0x8B) and waits for them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::task::TaskTracker;

use crate::auth::acl::AclSet;
use crate::auth::{Authenticator, DefaultPolicy};
use crate::broker::Shared;
use crate::config::Config;
use crate::config::Durability;
use crate::store::{DurableStore, MemoryStore, Mode, OpenError, Store};
use crate::transport::Stream;
use crate::{connection, listeners, sys};

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    local_addr: SocketAddr,
    /// Each of `config.listeners` that listens: what it speaks, and where.
    listeners: Vec<(String, SocketAddr)>,
    /// Each `config.listeners` entry's TLS slot (reloaded on SIGHUP).
    tls_slots: Vec<Option<listeners::TlsSlot>>,
    shutdown: broadcast::Sender<()>,
    tasks: JoinSet<()>,
    shared: Arc<Shared>,
}

impl Broker {
    /// Opens the store the configuration asks for (reading back what it
    /// holds), binds the listener and starts serving, with the default
    /// authentication policy.
    pub async fn start(config: Config) -> io::Result<Broker> {
        let auth = DefaultPolicy::from_config(&config).map_err(io::Error::other)?;
        let store = open_store(&config).map_err(io::Error::other)?;
        Broker::start_with(config, store, Box::new(auth)).await
    }

    /// Binds the listener and starts serving with `store` and `auth`.
    pub async fn start_with(
        config: Config,
        store: Box<dyn Store>,
        auth: Box<dyn Authenticator>,
    ) -> io::Result<Broker> {
        let listen = config.listen;
        // Certificates are read before anything starts: a bad file is one
        // error naming it.
        let wraps = config
            .listeners
            .iter()
            .map(listeners::wrap)
            .collect::<io::Result<Vec<_>>>()?;
        let tls_slots = wraps.iter().map(|w| w.tls().cloned()).collect();
        // An ACL that does not parse stops the start (with its line).
        let acl = AclSet::load(&config).map_err(io::Error::other)?;
        let shared = Arc::new(Shared::new(config, store, auth, acl));
        let config = &shared.config;
        // Sessions first: a client that connects finds its session.
        shared.restore(shared.store().take_recovered());
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, _) = broadcast::channel(1);
        let mut tasks = JoinSet::new();
        let mut listeners = Vec::new();
        for (index, wrap) in wraps.into_iter().enumerate() {
            let (address, optional) = (
                config.listeners[index].address,
                config.listeners[index].optional,
            );
            let bound = match TcpListener::bind(address).await {
                Ok(bound) => bound,
                Err(e) if optional => {
                    tracing::warn!("{} not opened: {address}: {e}", wrap.describe());
                    continue;
                }
                Err(e) => {
                    let why = format!("cannot listen on {address}: {e}");
                    return Err(io::Error::new(e.kind(), why));
                }
            };
            let at = bound.local_addr()?;
            let ctx = listeners::Listener::new(config, Some(index), &wrap.describe(), at);
            listeners.push((describe(&wrap.describe(), ctx.anonymous), at));
            let stop = shutdown.subscribe();
            let accepting = accept_loop(bound, wrap, ctx, shared.clone(), shutdown.clone(), stop);
            tasks.spawn(accepting);
        }
        let ctx = listeners::Listener::new(config, None, "MQTT", local_addr);
        tasks.spawn(accept_loop(
            listener,
            listeners::Wrap::Plain,
            ctx,
            shared.clone(),
            shutdown.clone(),
            shutdown.subscribe(),
        ));
        tasks.spawn(housekeeping(shared.clone(), shutdown.subscribe()));
        Ok(Broker {
            local_addr,
            listeners,
            tls_slots,
            shutdown,
            tasks,
            shared,
        })
    }

    /// Where MQTT over TCP listens (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `[[listeners]]` that listen, in the configuration's order: what
    /// each speaks ("MQTT over TLS", …) and where.
    pub fn listeners(&self) -> &[(String, SocketAddr)] {
        &self.listeners
    }

    /// Reads certificates, keys and the password file again (what SIGHUP
    /// does), from `config` (the file read again). What fails keeps its old
    /// state; the errors are returned, one line each. Listeners themselves
    /// (addresses, protocols) change only with a restart.
    pub fn reload(&self, config: &Config) -> Vec<String> {
        // Per-listener files are matched to listeners by position: with a
        // changed list they would land on the wrong listener.
        let running = &self.shared.config.listeners;
        let same = running.len() == config.listeners.len()
            && running
                .iter()
                .zip(&config.listeners)
                .all(|(a, b)| a.address == b.address && a.protocol == b.protocol);
        if !same {
            return vec![
                "the [[listeners]] changed: restart the broker to apply them; \
                 certificates, passwords and ACLs were left as they were"
                    .into(),
            ];
        }
        let mut errors = Vec::new();
        for (listener, slot) in config.listeners.iter().zip(&self.tls_slots) {
            if let Some(slot) = slot {
                if let Err(e) = listeners::reload(listener, slot) {
                    errors.push(format!("listener {}: {e}", listener.address));
                }
            }
        }
        if let Err(e) = self.shared.auth.reload(config) {
            errors.push(e);
        }
        // Catalogue AU6: rules that fail to load leave the old ones.
        match AclSet::load(config) {
            Ok(acl) => self.shared.set_acl(acl),
            Err(e) => errors.push(e.to_string()),
        }
        errors
    }

    /// The durability mode and where the data is, for the start-up line.
    pub fn store_description(&self) -> String {
        self.shared.store().describe()
    }

    /// Connected clients right now.
    pub fn connected_clients(&self) -> usize {
        self.shared
            .stats
            .clients_connected
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sessions held, connected or not.
    pub fn session_count(&self) -> usize {
        self.shared.session_count()
    }

    /// Queued messages whose bodies have left memory for the store (they
    /// were queued for persistent sessions that are away).
    pub fn spilled_messages(&self) -> u64 {
        self.shared
            .stats
            .messages_spilled
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.shared.subscription_count()
    }

    /// Tells every connection to close and waits until all have.
    pub async fn shutdown(mut self) {
        // Connected clients hear it through their session; those still in
        // the handshake, the accept loop and housekeeping by the channel.
        self.shared.kick_all();
        let _ = self.shutdown.send(());
        while self.tasks.join_next().await.is_some() {}
        // Every connection has let go: what they left is written out.
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.store().close()).await;
    }
}

/// A listener for the start-up lines, saying whether it admits anonymous
/// clients.
fn describe(what: &str, anonymous: bool) -> String {
    match anonymous {
        true => format!("{what} (anonymous clients allowed)"),
        false => format!("{what} (user name required)"),
    }
}

async fn accept_loop(
    listener: TcpListener,
    wrap: listeners::Wrap,
    ctx: listeners::Listener,
    shared: Arc<Shared>,
    shutdown: broadcast::Sender<()>,
    // Subscribed before the task first runs: a shutdown right after the
    // start must not be missed.
    mut stop: broadcast::Receiver<()>,
) {
    let ctx = Arc::new(ctx);
    let max = shared.config.limits.max_connections;
    // Tracks the connection tasks for the drain at shutdown, without a
    // per-task entry (a `JoinSet` costs each idle connection 56 bytes).
    let connections = TaskTracker::new();
    let mut warned = false;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                // Behind a proxy, the rate per source is checked once the
                // PROXY header names the source.
                if !ctx.proxy && !ctx.within_rate(peer.ip()) {
                    continue;
                }
                // Counted down when the connection's `Conn` is dropped.
                if shared.open_connections.fetch_add(1, Ordering::AcqRel) >= max {
                    shared.open_connections.fetch_sub(1, Ordering::AcqRel);
                    if !warned {
                        tracing::warn!(limit = max, "connection limit reached; refusing new connections");
                        warned = true;
                    }
                    continue;
                }
                if !ctx.admit() {
                    shared.open_connections.fetch_sub(1, Ordering::AcqRel);
                    if !warned {
                        tracing::warn!(listener = %ctx.name, limit = ctx.max_connections, "listener's max_connections reached; refusing new connections");
                        warned = true;
                    }
                    continue;
                }
                match &wrap {
                    listeners::Wrap::Plain if !ctx.proxy => {
                        connections.spawn(connection::serve(shared.clone(), Stream::Tcp(stream), ctx.clone(), shutdown.subscribe()));
                    }
                    other => {
                        // The handshake runs in the connection's task, so a
                        // slow client holds up no one else.
                        let (wrap, shared, shutdown, ctx) = (other.clone(), shared.clone(), shutdown.subscribe(), ctx.clone());
                        connections.spawn(async move {
                            match wrap.handshake(stream, &shared, &ctx).await {
                                Ok(stream) => connection::serve(shared, stream, ctx, shutdown).await,
                                Err(e) => {
                                    shared.open_connections.fetch_sub(1, Ordering::AcqRel);
                                    ctx.release();
                                    tracing::debug!(%peer, "{}: handshake failed: {e}", ctx.name);
                                }
                            }
                        });
                    }
                }
            }
            _ = stop.recv() => break,
        }
    }
    connections.close();
    if tokio::time::timeout(Duration::from_secs(10), connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not close within 10 s of shutdown");
    }
}

/// `$SYS` updates and session expiry.
async fn housekeeping(shared: Arc<Shared>, mut stop: broadcast::Receiver<()>) {
    let mut expiry = tokio::time::interval(Duration::from_secs(1));
    let sys_every = shared.config.sys_interval();
    let mut sys = tokio::time::interval(sys_every.unwrap_or(Duration::from_secs(3600)));
    let mut loads = sys::Loads::new();
    loop {
        tokio::select! {
            _ = expiry.tick() => {
                let now = tokio::time::Instant::now().into_std();
                shared.publish_delayed_wills(now);
                shared.expire_sessions(now);
                shared.expire_retained();
                shared.spill_offline();
            }
            _ = sys.tick(), if sys_every.is_some() => sys::publish_all(&shared, &mut loads),
            _ = stop.recv() => return,
        }
    }
}

/// Reads every file `config` names without starting anything (what
/// `pigeon broker --test-config` checks): certificates and keys, password
/// files, the SCRAM users file and ACL files. The error is one line.
pub fn check_files(config: &Config) -> io::Result<()> {
    for listener in &config.listeners {
        listeners::wrap(listener)?;
    }
    DefaultPolicy::from_config(config).map_err(io::Error::other)?;
    AclSet::load(config).map_err(io::Error::other)?;
    Ok(())
}

/// The store `config` asks for.
pub fn open_store(config: &Config) -> Result<Box<dyn Store>, OpenError> {
    let mode = match config.durability {
        Durability::Memory => return Ok(Box::new(MemoryStore)),
        Durability::Sync => Mode::Sync,
        Durability::Batch => Mode::Batch {
            interval: Duration::from_millis(config.batch_interval_ms),
        },
    };
    let cache =
        usize::try_from(config.store_cache_mb.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX);
    Ok(Box::new(DurableStore::open(&config.data_dir, mode, cache)?))
}
