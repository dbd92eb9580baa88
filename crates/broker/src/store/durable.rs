//! The durable store: redb under the data directory, written by one thread.
//!
//! Connections submit ops into a queue (one short lock); the writer thread
//! takes everything queued, applies it in one transaction and commits: with
//! `sync`, an fsync per commit, so every op that waited in the queue during
//! the previous fsync shares the next one (group commit). Then it publishes
//! the last sequence number applied and wakes the connections waiting on it.
//!
//! Within one batch a queue entry that is created and completed (a message
//! queued and acknowledged within one commit) is never written at all, and a
//! message body is written only while some entry refers to it: the writer
//! keeps the reference counts in memory (rebuilt at start-up).
//!
//! A failed commit (disk full, I/O error) writes nothing: redb transactions
//! are atomic, so what was stored stays intact. The ops of that batch are
//! reported as failed to the connections waiting on them, the store is
//! marked unhealthy (the broker then refuses what needs storing), and it is
//! healthy again after the next commit that succeeds — retried every second
//! while nothing else is written.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll, Waker};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};

use super::records::{
    decode_message, decode_subscription, encode_message, encode_subscription, EntryRecord,
    SessionRecord, INBOUND_QOS2, MESSAGES, QUEUE, RETAINED, SESSIONS, SUBSCRIPTIONS,
};
use super::{
    EntryState, NotStored, Op, Pending, Recovered, RecoveredEntry, RecoveredSession, Seq, Store,
    Stored,
};

/// When a commit reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every commit is fsynced before anything waiting on it is
    /// acknowledged.
    Sync,
    /// Commits are fsynced at most every `interval`; a crash can lose what
    /// was acknowledged in that window.
    Batch {
        /// Longest time between fsyncs.
        interval: Duration,
    },
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created.
    #[error("cannot create data directory {dir}: {source} (set data_dir or --data-dir to a writable directory)")]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process has the database open.
    #[error("the store {path} is in use by another process (another broker on this data directory? give each its own --data-dir)")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// redb could not open or read the database.
    #[error("cannot open the store {path}: {message}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// redb's description.
        message: String,
    },
}

/// Room a recovering store must find before it accepts writes again.
const PROBE_BYTES: usize = 256 * 1024;
/// Where the probe writes.
const PROBE: redb::TableDefinition<(), &[u8]> = redb::TableDefinition::new("probe");

/// The database file's name inside the data directory.
const FILE: &str = "pigeon.redb";
/// Failed ranges remembered for connections that have yet to look.
const FAILED_RANGES: usize = 256;
/// How often an unhealthy store tries to write again, and a `batch` store
/// checks whether an fsync is due.
const TICK: Duration = Duration::from_secs(1);

/// redb under the data directory; see the module docs.
#[derive(Debug)]
pub struct DurableStore {
    shared: Arc<Shared>,
    mode: Mode,
    path: PathBuf,
    writer: Mutex<Option<JoinHandle<()>>>,
    recovered: Mutex<Option<Recovered>>,
}

/// What connections and the writer thread share.
#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    /// Every op up to this one has been applied or has failed.
    done: AtomicU64,
    failed: Mutex<Failed>,
    healthy: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
    next_id: AtomicU64,
    /// The database, for reading message bodies back; replaced when the
    /// writer opens it again after a failure.
    db: RwLock<Option<Arc<Database>>>,
}

/// Sequence numbers of ops whose commit failed.
#[derive(Debug, Default)]
struct Failed {
    /// Recent failed ranges, adjacent ones merged.
    ranges: VecDeque<(Seq, Seq)>,
    /// Everything up to here that fell out of `ranges` counts as failed
    /// (uncertain is failed: nothing is acknowledged on a guess).
    forgotten: Seq,
}

impl Failed {
    fn add(&mut self, first: Seq, last: Seq) {
        if let Some(back) = self.ranges.back_mut() {
            if back.1 + 1 == first {
                back.1 = last;
                return;
            }
        }
        if self.ranges.len() == FAILED_RANGES {
            if let Some((_, hi)) = self.ranges.pop_front() {
                self.forgotten = self.forgotten.max(hi);
            }
        }
        self.ranges.push_back((first, last));
    }
}

#[derive(Debug, Default)]
struct Queue {
    ops: Vec<Op>,
    last: Seq,
    closing: bool,
    /// Groups being submitted, by the sequence number they start at.
    open_groups: BTreeMap<Seq, usize>,
}

impl Queue {
    /// Sequence number of `ops[0]`.
    fn first(&self) -> Seq {
        self.last + 1 - self.ops.len() as Seq
    }

    /// How many queued ops the next batch may take: those before the first
    /// group still being submitted, so a group is never split.
    fn ready(&self) -> usize {
        match self.open_groups.keys().next() {
            Some(&start) if !self.closing => {
                let before = start.saturating_sub(self.first());
                usize::try_from(before).map_or(self.ops.len(), |n| n.min(self.ops.len()))
            }
            _ => self.ops.len(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl DurableStore {
    /// Opens (or creates) the store in `dir` and reads back what it holds;
    /// sessions that expired while the broker was down are dropped.
    /// `cache_bytes` bounds redb's page cache: pages beyond it are read
    /// from the file again (the operating system's cache usually has them).
    pub fn open(dir: &Path, mode: Mode, cache_bytes: usize) -> Result<DurableStore, OpenError> {
        // Catalogue AU11: what clients sent is for the broker's user only
        // (a new directory 0700, the file 0600).
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| OpenError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE);
        let db_error = |e: &dyn std::fmt::Display| OpenError::Database {
            path: path.clone(),
            message: e.to_string(),
        };
        let opening = Instant::now();
        let db = open_database(&path, cache_bytes).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => OpenError::InUse { path: path.clone() },
            e => db_error(&e),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o600);
            if let Err(e) = std::fs::set_permissions(&path, private) {
                tracing::warn!(
                    "store: cannot make {} private (mode 0600): {e}",
                    path.display()
                );
            }
        }
        tracing::info!(
            "store: opened {} in {:.1?}",
            path.display(),
            opening.elapsed()
        );
        let (found, refs, max_id) = recover(&db).map_err(|e| db_error(&e))?;
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            work: Condvar::new(),
            done: AtomicU64::new(0),
            failed: Mutex::default(),
            healthy: AtomicBool::new(true),
            waiters: Mutex::default(),
            next_id: AtomicU64::new(max_id + 1),
            db: RwLock::new(None),
        });
        let db = Arc::new(db);
        *shared.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db.clone());
        let mut writer = Writer {
            db: Some(db),
            path: path.clone(),
            cache_bytes,
            refs,
            mode,
            shared: shared.clone(),
            last_fsync: Instant::now(),
            unsynced: false,
            retry: Vec::new(),
        };
        writer.clean_up(&found).map_err(|e| db_error(&e))?;
        let thread = std::thread::Builder::new()
            .name("pigeon-store".into())
            .spawn(move || {
                // A writer that died would leave every waiting connection
                // waiting: better a broker that stops (and restarts from
                // what it stored) than one that hangs.
                let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run()));
                if died.is_err() {
                    tracing::error!("store: the writer thread panicked; stopping the broker");
                    std::process::abort();
                }
            })
            .map_err(|e| db_error(&e))?;
        Ok(DurableStore {
            shared,
            mode,
            path,
            writer: Mutex::new(Some(thread)),
            recovered: Mutex::new(Some(found.kept)),
        })
    }
}

impl Store for DurableStore {
    fn mode(&self) -> &'static str {
        match self.mode {
            Mode::Sync => "sync",
            Mode::Batch { .. } => "batch",
        }
    }

    fn describe(&self) -> String {
        match self.mode {
            Mode::Sync => format!(
                "sync (acknowledged only once fsynced; group commit) in {}",
                self.path.display()
            ),
            Mode::Batch { interval } => format!(
                "batch (fsync every {} ms: a crash can lose what was acknowledged in that window) in {}",
                interval.as_millis(),
                self.path.display()
            ),
        }
    }

    fn is_persistent(&self) -> bool {
        true
    }

    fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn submit(&self, op: Op) -> Seq {
        let mut queue = lock(&self.shared.queue);
        queue.ops.push(op);
        queue.last += 1;
        let seq = queue.last;
        let first = queue.ops.len() == 1;
        drop(queue);
        if first {
            self.shared.work.notify_one();
        }
        seq
    }

    fn outcome(&self, pending: Pending) -> Option<Result<(), NotStored>> {
        self.shared.outcome(pending)
    }

    fn begin_group(&self) -> Seq {
        let mut queue = lock(&self.shared.queue);
        let start = queue.last + 1;
        *queue.open_groups.entry(start).or_default() += 1;
        start
    }

    fn end_group(&self, group: Seq) {
        let mut queue = lock(&self.shared.queue);
        if let Some(count) = queue.open_groups.get_mut(&group) {
            *count -= 1;
            if *count == 0 {
                queue.open_groups.remove(&group);
            }
        }
        let ready = queue.ready() > 0;
        drop(queue);
        if ready {
            self.shared.work.notify_one();
        }
    }

    fn poll_durable(&self, pending: Pending, cx: &mut Context<'_>) -> Poll<Result<(), NotStored>> {
        if let Some(result) = self.shared.outcome(pending) {
            return Poll::Ready(result);
        }
        lock(&self.shared.waiters).push(cx.waker().clone());
        // The writer may have finished in between.
        match self.shared.outcome(pending) {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }

    fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Acquire)
    }

    fn load(&self, message: u64) -> Result<Option<super::Expiring>, NotStored> {
        let db = self
            .shared
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Being opened again after a failed write.
        let db = db.ok_or(NotStored)?;
        let txn = db.begin_read().map_err(|_| NotStored)?;
        let table = txn.open_table(MESSAGES).map_err(|_| NotStored)?;
        let value = table.get(message).map_err(|_| NotStored)?;
        Ok(value.and_then(|v| decode_message(v.value())))
    }

    fn take_recovered(&self) -> Recovered {
        lock(&self.recovered).take().unwrap_or_default()
    }

    fn close(&self) {
        lock(&self.shared.queue).closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = lock(&self.writer).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for DurableStore {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// The outcome of `pending` if the writer has got that far.
    fn outcome(&self, pending: Pending) -> Option<Result<(), NotStored>> {
        if self.done.load(Ordering::Acquire) < pending.last {
            return None;
        }
        let failed = lock(&self.failed);
        // Ranges forgotten to bound the list count as failed.
        let lost = pending.first <= failed.forgotten
            || failed
                .ranges
                .iter()
                .any(|&(lo, hi)| lo <= pending.last && pending.first <= hi);
        Some(if lost { Err(NotStored) } else { Ok(()) })
    }

    fn finish(&self, last: Seq, result: Result<(), String>) {
        match result {
            Ok(()) => {
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::warn!("store: writing again; messages are acknowledged again");
                }
            }
            Err(e) => {
                let first = self.done.load(Ordering::Acquire) + 1;
                lock(&self.failed).add(first, last);
                if self.healthy.swap(false, Ordering::AcqRel) {
                    tracing::error!(
                        ops = last + 1 - first,
                        "store: write failed: {e}. Messages that need storing are refused \
                         (not acknowledged) until writing works again; free disk space in the data directory"
                    );
                }
            }
        }
        self.done.store(last, Ordering::Release);
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for waker in waiters {
            waker.wake();
        }
    }
}

/// What recovery found: the sessions to keep and those that expired.
struct Found {
    kept: Recovered,
    expired: Vec<String>,
    /// Entries of sessions that have no record.
    stray: Vec<(String, Stored)>,
}

/// Reads everything back. Returns what was found, the reference count of
/// each message body, and the highest id in use.
fn recover(db: &Database) -> Result<(Found, HashMap<u64, u32>, u64), redb::Error> {
    let started = Instant::now();
    ensure_tables(db)?;
    let txn = db.begin_read()?;
    let now = unix_now();
    let mut sessions: Vec<RecoveredSession> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut expired = Vec::new();
    let mut due_wills = Vec::new();
    for row in txn.open_table(SESSIONS)?.iter()? {
        let (key, value) = row?;
        let Some(record) = SessionRecord::decode(value.value()) else {
            continue;
        };
        // Connected when the broker stopped: its expiry starts now.
        let offline = record
            .disconnected_at
            .map_or(0, |at| now.saturating_sub(at));
        if record.expiry.is_some_and(|e| offline >= u64::from(e)) {
            expired.push(key.value().to_owned());
            // MQTT-3.1.2-8 (5.0): a will still waiting goes when the
            // session ends.
            due_wills.extend(record.will.map(|w| w.message.clone()));
            continue;
        }
        index.insert(key.value().to_owned(), sessions.len());
        sessions.push(RecoveredSession {
            client_id: key.value().into(),
            expiry: record.expiry,
            offline_for: Duration::from_secs(offline),
            connected: record.disconnected_at.is_none(),
            will: record.will.clone(),
            identity: record.identity.clone(),
            subscriptions: Vec::new(),
            queue: Vec::new(),
            inbound_qos2: Vec::new(),
        });
    }
    for row in txn.open_table(SUBSCRIPTIONS)?.iter()? {
        let (key, value) = row?;
        let (client, filter) = key.value();
        let (Some(&i), Some(sub)) = (index.get(client), decode_subscription(value.value())) else {
            continue;
        };
        let filter = pigeon_proto::string::MqttStr::try_from(filter)
            .ok()
            .and_then(|f| pigeon_proto::topic::TopicFilter::new(f).ok());
        if let Some(filter) = filter {
            sessions[i].subscriptions.push((filter, sub));
        }
    }
    // Bodies are not read: queued messages stay on disk until sent (a
    // scan of the bodies alone would read every byte queued).
    let messages = txn.open_table(MESSAGES)?;
    let mut max_id = messages.last()?.map_or(0, |(k, _)| k.value());
    let mut refs: HashMap<u64, u32> = HashMap::new();
    let mut stray = Vec::new();
    let gone: HashSet<&str> = expired.iter().map(String::as_str).collect();
    for row in txn.open_table(QUEUE)?.iter()? {
        let (key, value) = row?;
        let (client, entry) = key.value();
        max_id = max_id.max(entry);
        let Some(record) = EntryRecord::decode(value.value()) else {
            continue;
        };
        // Every entry counts, so dropping a session's entries frees exactly
        // the bodies no other session needs.
        *refs.entry(record.message).or_default() += 1;
        let stored = Stored {
            message: record.message,
            entry,
        };
        let Some(&i) = index.get(client) else {
            if !gone.contains(client) {
                stray.push((client.to_owned(), stored));
            }
            continue;
        };
        // A QoS 2 message in flight is resent as it was: read it now.
        let message = match record.state {
            EntryState::Sent(_) => messages
                .get(record.message)?
                .and_then(|v| decode_message(v.value()))
                .map(|(message, _)| message),
            _ => None,
        };
        sessions[i].queue.push(RecoveredEntry {
            stored,
            message,
            payload_len: record.payload_len as usize,
            qos: record.qos,
            retain: record.retain,
            identifiers: record.identifiers,
            state: record.state,
        });
    }
    for row in txn.open_table(INBOUND_QOS2)?.iter()? {
        let (key, _) = row?;
        let (client, id) = key.value();
        if let (Some(&i), Some(id)) = (index.get(client), pigeon_proto::PacketId::new(id)) {
            sessions[i].inbound_qos2.push(id);
        }
    }
    let mut retained = Vec::new();
    for row in txn.open_table(RETAINED)?.iter()? {
        let (_, value) = row?;
        if let Some(message) = decode_message(value.value()) {
            retained.push(message);
        }
    }
    let queued: usize = sessions.iter().map(|s| s.queue.len()).sum();
    tracing::info!(
        sessions = sessions.len(),
        queued,
        retained = retained.len(),
        expired = expired.len(),
        "store: recovered in {:.1?}",
        started.elapsed()
    );
    let kept = Recovered {
        sessions,
        retained,
        due_wills,
    };
    Ok((
        Found {
            kept,
            expired,
            stray,
        },
        refs,
        max_id,
    ))
}

fn ensure_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = begin(db, Durability::Immediate)?;
    txn.open_table(SESSIONS)?;
    txn.open_table(SUBSCRIPTIONS)?;
    txn.open_table(MESSAGES)?;
    txn.open_table(QUEUE)?;
    txn.open_table(INBOUND_QOS2)?;
    txn.open_table(RETAINED)?;
    txn.commit()?;
    Ok(())
}

/// The writer thread's state.
struct Writer {
    /// `None` after a failed write: redb refuses every operation after an
    /// I/O error until the database is opened again, which also rolls the
    /// file back to its last durable commit.
    db: Option<Arc<Database>>,
    path: PathBuf,
    cache_bytes: usize,
    /// References from queue entries to each message body on disk.
    refs: HashMap<u64, u32>,
    mode: Mode,
    shared: Arc<Shared>,
    last_fsync: Instant,
    /// A `batch` commit has not been fsynced yet.
    unsynced: bool,
    /// Ops of failed commits, applied before any newer op.
    retry: Vec<Op>,
}

impl Writer {
    fn run(mut self) {
        loop {
            let (ops, last, closing) = self.next_batch();
            if ops.is_empty() {
                if closing {
                    let _ = self.commit_empty(Durability::Immediate);
                    return;
                }
                self.idle();
                continue;
            }
            let durability = self.durability();
            // Ops of failed commits go first: what memory already holds
            // reaches the disk, in order, once writing works again.
            let ops = match self.retry.is_empty() {
                true => ops,
                false => std::mem::take(&mut self.retry)
                    .into_iter()
                    .chain(ops)
                    .collect(),
            };
            let result = self.apply(&ops, durability).map_err(|e| e.to_string());
            if result.is_err() {
                self.db = None;
                self.retry = ops;
            }
            let fsynced = matches!(durability, Durability::Immediate);
            if result.is_ok() && fsynced {
                self.last_fsync = Instant::now();
                self.unsynced = false;
            } else if result.is_ok() {
                self.unsynced = true;
            }
            self.shared.finish(last, result);
        }
    }

    /// Waits for ops (or a tick), and takes all of them.
    fn next_batch(&self) -> (Vec<Op>, Seq, bool) {
        let mut queue = lock(&self.shared.queue);
        if queue.ready() == 0 && !queue.closing {
            queue = self
                .shared
                .work
                .wait_timeout(queue, TICK)
                .map_or_else(|e| e.into_inner().0, |(q, _)| q);
        }
        let n = queue.ready();
        let first = queue.first();
        let ops = match n == queue.ops.len() {
            true => std::mem::take(&mut queue.ops),
            false => queue.ops.drain(..n).collect(),
        };
        let closing = queue.closing && queue.ops.is_empty();
        (ops, first + n as Seq - 1, closing)
    }

    fn durability(&self) -> Durability {
        match self.mode {
            Mode::Sync => Durability::Immediate,
            Mode::Batch { interval } if self.last_fsync.elapsed() >= interval => {
                Durability::Immediate
            }
            Mode::Batch { .. } => Durability::None,
        }
    }

    /// Nothing to write: fsync a `batch` store that is due, and see whether
    /// an unhealthy store can write again.
    fn idle(&mut self) {
        let due = self.unsynced && matches!(self.durability(), Durability::Immediate);
        let unhealthy = !self.shared.healthy.load(Ordering::Acquire);
        if due || unhealthy {
            let result = match unhealthy {
                true => self.probe(),
                false => self.commit_empty(Durability::Immediate),
            };
            let retried = match (result.is_ok(), self.retry.is_empty()) {
                (true, false) => {
                    let retry = std::mem::take(&mut self.retry);
                    let applied = self.apply(&retry, Durability::Immediate);
                    if applied.is_err() {
                        self.db = None;
                        self.retry = retry;
                    }
                    applied.is_ok()
                }
                (ok, _) => ok,
            };
            if retried {
                self.last_fsync = Instant::now();
                self.unsynced = false;
                if unhealthy {
                    let done = self.shared.done.load(Ordering::Acquire);
                    self.shared.finish(done, Ok(()));
                }
            }
        }
    }

    /// The database, opened again (and the reference counts read again)
    /// after a failed write.
    fn database(&mut self) -> Result<&Database, redb::Error> {
        if self.db.is_none() {
            // The old handle must be gone before the file is opened again.
            *self.shared.db.write().unwrap_or_else(|e| e.into_inner()) = None;
            let db = Arc::new(open_database(&self.path, self.cache_bytes)?);
            self.refs = count_refs(&db)?;
            *self.shared.db.write().unwrap_or_else(|e| e.into_inner()) = Some(db.clone());
            self.db = Some(db);
        }
        self.db.as_deref().ok_or(redb::Error::DatabaseAlreadyOpen)
    }

    fn commit_empty(&mut self, durability: Durability) -> Result<(), redb::Error> {
        let result = self.try_commit_empty(durability);
        if result.is_err() {
            self.db = None;
        }
        result
    }

    fn try_commit_empty(&mut self, durability: Durability) -> Result<(), redb::Error> {
        begin(self.database()?, durability)?.commit()?;
        Ok(())
    }

    /// Whether the store can write again: commits [`PROBE_BYTES`] and then
    /// removes them, so a disk with only a few pages free does not count
    /// as recovered (and the store does not flap between the two).
    fn probe(&mut self) -> Result<(), redb::Error> {
        let result = self.try_probe();
        if result.is_err() {
            self.db = None;
        }
        result
    }

    fn try_probe(&mut self) -> Result<(), redb::Error> {
        let db = self.database()?;
        let txn = begin(db, Durability::Immediate)?;
        txn.open_table(PROBE)?.insert((), &[0u8; PROBE_BYTES][..])?;
        txn.commit()?;
        let txn = begin(db, Durability::Immediate)?;
        txn.open_table(PROBE)?.remove(())?;
        txn.commit()?;
        Ok(())
    }

    /// Drops the sessions that expired while the broker was down, and
    /// entries of sessions that have no record.
    fn clean_up(&mut self, found: &Found) -> Result<(), redb::Error> {
        let expired = found.expired.iter().map(|c| Op::DeleteSession {
            client_id: c.as_str().into(),
        });
        let stray = found.stray.iter().map(|(c, stored)| Op::Done {
            client_id: c.as_str().into(),
            stored: *stored,
        });
        let ops: Vec<Op> = expired.chain(stray).collect();
        if ops.is_empty() {
            return Ok(());
        }
        self.apply(&ops, Durability::Immediate)
    }

    /// Applies `ops` in one transaction. Reference counts change only if
    /// it commits.
    fn apply(&mut self, ops: &[Op], durability: Durability) -> Result<(), redb::Error> {
        // Entries created and completed within this batch are not written.
        let done_here: HashSet<u64> = ops
            .iter()
            .filter_map(|op| match op {
                Op::Done { stored, .. } => Some(stored.entry),
                _ => None,
            })
            .collect();
        let mut skipped: HashSet<u64> = HashSet::new();
        let mut refs = RefChanges::default();
        let txn = begin(self.database()?, durability)?;
        {
            let mut tables = Tables::open(&txn)?;
            for op in ops {
                match op {
                    Op::Enqueue { stored, .. } if done_here.contains(&stored.entry) => {
                        skipped.insert(stored.entry);
                    }
                    Op::Done { stored, .. } if skipped.contains(&stored.entry) => {}
                    op => self.apply_one(&mut tables, op, &mut refs)?,
                }
            }
            self.collect_garbage(&mut tables, &refs)?;
        }
        txn.commit()?;
        refs.apply_to(&mut self.refs);
        Ok(())
    }

    fn apply_one(
        &self,
        t: &mut Tables<'_>,
        op: &Op,
        refs: &mut RefChanges,
    ) -> Result<(), redb::Error> {
        match op {
            Op::Session {
                client_id,
                expiry,
                disconnected_at,
                will,
                identity,
            } => {
                let record = SessionRecord {
                    expiry: *expiry,
                    disconnected_at: *disconnected_at,
                    will: will.clone(),
                    identity: identity.clone(),
                };
                t.sessions.insert(&**client_id, &record.encode()[..])?;
            }
            Op::DeleteSession { client_id } => delete_session(t, client_id, refs)?,
            Op::Subscribe {
                client_id,
                filter,
                subscription,
            } => {
                t.subscriptions.insert(
                    (&**client_id, filter.as_str()),
                    &encode_subscription(subscription)[..],
                )?;
            }
            Op::Unsubscribe { client_id, filter } => {
                t.subscriptions.remove((&**client_id, filter.as_str()))?;
            }
            Op::Enqueue {
                client_id,
                stored,
                message,
                qos,
                retain,
                identifiers,
                expires_at,
            } => {
                if refs.add(&self.refs, stored.message) {
                    if let Some(body) = encode_message(message, *expires_at) {
                        t.messages.insert(stored.message, &body[..])?;
                    }
                }
                let record = EntryRecord {
                    message: stored.message,
                    payload_len: u32::try_from(message.payload.len()).unwrap_or(u32::MAX),
                    qos: *qos,
                    retain: *retain,
                    state: EntryState::Queued,
                    identifiers: identifiers.clone(),
                };
                t.queue
                    .insert((&**client_id, stored.entry), &record.encode()[..])?;
            }
            Op::Sent {
                client_id,
                stored,
                packet_id,
            } => update_entry(
                &mut t.queue,
                client_id,
                stored.entry,
                EntryState::Sent(*packet_id),
            )?,
            Op::Received { client_id, stored } => {
                let queue = &mut t.queue;
                let record = queue
                    .get((&**client_id, stored.entry))?
                    .and_then(|v| EntryRecord::decode(v.value()));
                if let Some(mut record) = record {
                    if let EntryState::Sent(id) = record.state {
                        record.state = EntryState::Received(id);
                        queue.insert((&**client_id, stored.entry), &record.encode()[..])?;
                    }
                }
            }
            Op::Done { client_id, stored } => {
                let removed = t.queue.remove((&**client_id, stored.entry))?.is_some();
                if removed {
                    refs.remove(stored.message);
                }
            }
            Op::InboundQos2 {
                client_id,
                packet_id,
            } => {
                t.inbound_qos2.insert((&**client_id, packet_id.get()), ())?;
            }
            Op::InboundQos2Done {
                client_id,
                packet_id,
            } => {
                t.inbound_qos2.remove((&**client_id, packet_id.get()))?;
            }
            Op::Retain {
                message,
                expires_at,
            } => {
                if let Some(body) = encode_message(message, *expires_at) {
                    t.retained.insert(message.topic.as_str(), &body[..])?;
                }
            }
            Op::Unretain { topic } => {
                t.retained.remove(topic.as_str())?;
            }
        }
        Ok(())
    }

    /// Removes the bodies no entry refers to any more.
    fn collect_garbage(&self, t: &mut Tables<'_>, refs: &RefChanges) -> Result<(), redb::Error> {
        for id in refs.unreferenced(&self.refs) {
            t.messages.remove(id)?;
        }
        Ok(())
    }
}

/// The tables of one write transaction, opened once per batch (opening a
/// table per op cost a quarter of the writer's time).
struct Tables<'t> {
    sessions: redb::Table<'t, &'static str, &'static [u8]>,
    subscriptions: redb::Table<'t, (&'static str, &'static str), &'static [u8]>,
    messages: redb::Table<'t, u64, &'static [u8]>,
    queue: redb::Table<'t, (&'static str, u64), &'static [u8]>,
    inbound_qos2: redb::Table<'t, (&'static str, u16), ()>,
    retained: redb::Table<'t, &'static str, &'static [u8]>,
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, redb::Error> {
        Ok(Tables {
            sessions: txn.open_table(SESSIONS)?,
            subscriptions: txn.open_table(SUBSCRIPTIONS)?,
            messages: txn.open_table(MESSAGES)?,
            queue: txn.open_table(QUEUE)?,
            inbound_qos2: txn.open_table(INBOUND_QOS2)?,
            retained: txn.open_table(RETAINED)?,
        })
    }
}

/// Removes a session with its subscriptions, queue entries (releasing their
/// bodies) and QoS 2 identifiers.
fn delete_session(
    t: &mut Tables<'_>,
    client: &str,
    refs: &mut RefChanges,
) -> Result<(), redb::Error> {
    t.sessions.remove(client)?;
    let filters: Vec<String> = t
        .subscriptions
        .range((client, "")..)?
        .map_while(|row| {
            let (key, _) = row.ok()?;
            let (c, filter) = key.value();
            (c == client).then(|| filter.to_owned())
        })
        .collect();
    for filter in filters {
        t.subscriptions.remove((client, filter.as_str()))?;
    }
    let entries: Vec<(u64, u64)> = t
        .queue
        .range((client, 0)..=(client, u64::MAX))?
        .filter_map(|row| {
            let (key, value) = row.ok()?;
            let record = EntryRecord::decode(value.value())?;
            Some((key.value().1, record.message))
        })
        .collect();
    for (entry, message) in entries {
        t.queue.remove((client, entry))?;
        refs.remove(message);
    }
    let ids: Vec<u16> = t
        .inbound_qos2
        .range((client, 0)..=(client, u16::MAX))?
        .filter_map(|row| Some(row.ok()?.0.value().1))
        .collect();
    for id in ids {
        t.inbound_qos2.remove((client, id))?;
    }
    Ok(())
}

/// A write transaction. Every durable commit also saves redb's allocator
/// state (quick repair): commits cost a little more, but opening the file
/// after a crash or a kill does not walk the whole database (seconds for a
/// million messages). So every write goes through here: one commit
/// without it would make the next open after a crash slow again.
fn begin(db: &Database, durability: Durability) -> Result<WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    let durable = matches!(durability, Durability::Immediate);
    txn.set_durability(durability)?;
    txn.set_quick_repair(durable);
    Ok(txn)
}

fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(path)
}

/// References from queue entries to each message body.
fn count_refs(db: &Database) -> Result<HashMap<u64, u32>, redb::Error> {
    let txn = db.begin_read()?;
    let mut refs: HashMap<u64, u32> = HashMap::new();
    for row in txn.open_table(QUEUE)?.iter()? {
        let (_, value) = row?;
        if let Some(record) = EntryRecord::decode(value.value()) {
            *refs.entry(record.message).or_default() += 1;
        }
    }
    Ok(refs)
}

fn update_entry(
    queue: &mut redb::Table<'_, (&'static str, u64), &'static [u8]>,
    client: &str,
    entry: u64,
    state: EntryState,
) -> Result<(), redb::Error> {
    let record = queue
        .get((client, entry))?
        .and_then(|v| EntryRecord::decode(v.value()));
    if let Some(mut record) = record {
        record.state = state;
        queue.insert((client, entry), &record.encode()[..])?;
    }
    Ok(())
}

/// Reference-count changes of one batch, applied to the writer's counts
/// only if the batch commits.
#[derive(Default)]
struct RefChanges {
    delta: HashMap<u64, i64>,
}

impl RefChanges {
    /// Counts a new reference; returns whether the body is not on disk yet.
    fn add(&mut self, base: &HashMap<u64, u32>, message: u64) -> bool {
        let before = self.count(base, message);
        *self.delta.entry(message).or_default() += 1;
        before == 0
    }

    fn remove(&mut self, message: u64) {
        *self.delta.entry(message).or_default() -= 1;
    }

    fn count(&self, base: &HashMap<u64, u32>, message: u64) -> i64 {
        i64::from(base.get(&message).copied().unwrap_or(0))
            + self.delta.get(&message).copied().unwrap_or(0)
    }

    /// Bodies whose count this batch brought to zero.
    fn unreferenced(&self, base: &HashMap<u64, u32>) -> Vec<u64> {
        self.delta
            .keys()
            .copied()
            .filter(|&m| self.count(base, m) <= 0)
            .collect()
    }

    fn apply_to(self, base: &mut HashMap<u64, u32>) {
        for (message, delta) in self.delta {
            let n = i64::from(base.get(&message).copied().unwrap_or(0)) + delta;
            if n > 0 {
                base.insert(message, u32::try_from(n).unwrap_or(u32::MAX));
            } else {
                base.remove(&message);
            }
        }
    }
}
