//! redb vs fjall on Pigeon's durable-store workload.
//!
//! Pigeon's store (crates/broker/src/store/durable.rs) has one writer
//! thread that applies a batch of ops in ONE atomic, fsynced commit (group
//! commit). For QoS 1 traffic the ops are:
//!   * append a message body: messages[u64 id] = encoded PUBLISH;
//!   * add per-session references: queue[(client id, entry id)] = 17-byte
//!     entry record, one per subscribed session;
//!   * delete on ack: remove the queue entry, and the body once its last
//!     reference is gone (reference counts are kept in memory).
//! This program replays that op stream against both engines.
//!
//! Sub-commands (the `matrix` driver spawns the other two as child
//! processes, so every run and every recovery is a fresh process):
//!   run     --engine E --dir D [workload flags]   write phase, prints `key=value`
//!   recover --engine E --dir D                    reopen + scan, prints `key=value`
//!   matrix  [--runs 3] [--quick]                  all configurations, engines alternated

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- workload

/// Parameters of one run (all on the command line).
#[derive(Clone, Debug)]
struct Workload {
    sessions: usize,
    batch: usize,
    payload: usize,
    total: usize,
    /// Sessions each message is queued for.
    fanout: usize,
    /// Acks arrive this many batches after the message was queued.
    lag: usize,
    /// Only messages with index < total * ack_frac are ever acked
    /// (1.0 = a subscriber that keeps up; 0.5 = it goes away halfway).
    ack_frac: f64,
    /// fjall: `SyncData` (fdatasync, what redb uses) or `SyncAll` (fsync).
    sync_all: bool,
    /// redb: open both tables once per op, as durable.rs does today,
    /// instead of once per batch.
    redb_open_per_op: bool,
    /// redb: commit without quick repair (the broker always sets it; with
    /// it redb uses two-phase commit = two fdatasyncs per commit, without
    /// it one, but a crash then makes the next open walk the whole file).
    redb_no_quick_repair: bool,
    /// Exit without closing the database after the last commit
    /// (simulates a kill -9 / crash right after an fsynced commit).
    crash: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            sessions: 1000,
            batch: 1000,
            payload: 64,
            total: 200_000,
            fanout: 1,
            lag: 10,
            ack_frac: 1.0,
            sync_all: false,
            redb_open_per_op: false,
            redb_no_quick_repair: false,
            crash: false,
        }
    }
}

impl Workload {
    fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--sessions".into(),
            self.sessions.to_string(),
            "--batch".into(),
            self.batch.to_string(),
            "--payload".into(),
            self.payload.to_string(),
            "--total".into(),
            self.total.to_string(),
            "--fanout".into(),
            self.fanout.to_string(),
            "--lag".into(),
            self.lag.to_string(),
            "--ack-frac".into(),
            self.ack_frac.to_string(),
        ];
        if self.sync_all {
            a.push("--sync-all".into());
        }
        if self.redb_open_per_op {
            a.push("--redb-open-per-op".into());
        }
        if self.redb_no_quick_repair {
            a.push("--redb-no-quick-repair".into());
        }
        if self.crash {
            a.push("--crash".into());
        }
        a
    }
}

/// One write, as the broker's writer would issue it.
enum Op {
    PutMessage { id: u64, body: Vec<u8> },
    PutEntry { session: usize, entry: u64, record: [u8; 17] },
    DelEntry { session: usize, entry: u64 },
    DelMessage { id: u64 },
}

/// Generates the op stream batch by batch; identical for both engines.
struct Generator {
    w: Workload,
    clients: Vec<String>,
    next_id: u64,
    rng: u64,
    /// Acks due at each future batch: (session, entry, message).
    due: HashMap<usize, Vec<(usize, u64, u64)>>,
    /// References to each body (the broker keeps the same map in memory).
    refs: HashMap<u64, u32>,
    next_session: usize,
    messages_made: usize,
}

impl Generator {
    fn new(w: Workload) -> Self {
        let clients = (0..w.sessions)
            .map(|i| format!("pigeon-bench-client-{i:06}"))
            .collect();
        Generator {
            w,
            clients,
            next_id: 1,
            rng: 0x9E37_79B9_7F4A_7C15,
            due: HashMap::new(),
            refs: HashMap::new(),
            next_session: 0,
            messages_made: 0,
        }
    }

    fn xorshift(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    /// Roughly what `encode_message` stores: 2 bytes (QoS, RETAIN), the
    /// PUBLISH fixed header, topic, empty properties, then the payload.
    /// The payload is pseudo-random so neither engine gains from
    /// compression (fjall compresses deeper LSM levels with LZ4).
    fn body(&mut self, id: u64) -> Vec<u8> {
        let topic = format!("pigeon/bench/sensor/{:08}", id % 100_000);
        let mut b = Vec::with_capacity(self.w.payload + topic.len() + 8);
        b.extend_from_slice(&[1, 0, 0x32, 0x80, 0x08]);
        b.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        b.extend_from_slice(topic.as_bytes());
        b.push(0);
        while b.len() < 8 + topic.len() + self.w.payload {
            let r = self.xorshift().to_le_bytes();
            b.extend_from_slice(&r);
        }
        b.truncate(8 + topic.len() + self.w.payload);
        b
    }

    /// The 17-byte `EntryRecord` of a queued QoS 1 message.
    fn record(&self, message: u64) -> [u8; 17] {
        let mut r = [0u8; 17];
        r[0..8].copy_from_slice(&message.to_be_bytes());
        r[8..12].copy_from_slice(&(self.w.payload as u32).to_be_bytes());
        r[12] = 1; // QoS 1
        r
    }

    /// The ops of batch `b`: `batch` new messages (body + `fanout` entries
    /// each), then the acks that fall due now. Reference `j` of a message
    /// queued in batch `b` is acked in batch `b + lag + j`, so with fan-out
    /// the body is deleted only with its last reference.
    fn batch(&mut self, b: usize, ops: &mut Vec<Op>) {
        ops.clear();
        let ack_limit = (self.w.total as f64 * self.w.ack_frac) as usize;
        for _ in 0..self.w.batch.min(self.w.total - self.messages_made) {
            let id = self.next_id;
            self.next_id += 1;
            let body = self.body(id);
            ops.push(Op::PutMessage { id, body });
            let acked = self.messages_made < ack_limit;
            self.messages_made += 1;
            for j in 0..self.w.fanout {
                let session = self.next_session;
                self.next_session = (self.next_session + 1) % self.w.sessions;
                let entry = self.next_id;
                self.next_id += 1;
                ops.push(Op::PutEntry { session, entry, record: self.record(id) });
                *self.refs.entry(id).or_default() += 1;
                if acked {
                    self.due.entry(b + self.w.lag + j).or_default().push((session, entry, id));
                }
            }
        }
        for (session, entry, message) in self.due.remove(&b).unwrap_or_default() {
            ops.push(Op::DelEntry { session, entry });
            let n = self.refs.get_mut(&message).expect("counted");
            *n -= 1;
            if *n == 0 {
                self.refs.remove(&message);
                ops.push(Op::DelMessage { id: message });
            }
        }
    }

    fn batches(&self) -> usize {
        self.w.total.div_ceil(self.w.batch)
    }
}

// ---------------------------------------------------------------- engines

const CACHE_BYTES: usize = 64 * 1024 * 1024; // the broker's store_cache_mb default

/// One engine behind the three things the benchmark does.
trait Engine {
    fn create_sessions(&mut self, clients: &[String]);
    /// Applies `ops` atomically and returns once they are durable.
    fn commit(&mut self, ops: &[Op], clients: &[String]);
    fn close(self: Box<Self>);
}

mod redb_engine {
    use super::*;
    use redb::{Database, Durability, TableDefinition, WriteTransaction};

    // The broker's table definitions (records.rs).
    pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
    pub const MESSAGES: TableDefinition<u64, &[u8]> = TableDefinition::new("messages");
    pub const QUEUE: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("queue");

    pub struct Redb {
        pub db: Database,
        pub open_per_op: bool,
        pub quick_repair: bool,
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join("pigeon.redb")
    }

    pub fn open(dir: &Path) -> Database {
        Database::builder().set_cache_size(CACHE_BYTES).create(path(dir)).expect("open redb")
    }

    /// As durable.rs `begin`: Immediate durability plus quick repair.
    fn begin(db: &Database, quick_repair: bool) -> WriteTransaction {
        let mut txn = db.begin_write().expect("begin");
        txn.set_durability(Durability::Immediate).expect("durability");
        txn.set_quick_repair(quick_repair);
        txn
    }

    impl Engine for Redb {
        fn create_sessions(&mut self, clients: &[String]) {
            let txn = begin(&self.db, self.quick_repair);
            {
                let mut s = txn.open_table(SESSIONS).unwrap();
                for c in clients {
                    s.insert(c.as_str(), &[0u8; 13][..]).unwrap();
                }
                txn.open_table(MESSAGES).unwrap();
                txn.open_table(QUEUE).unwrap();
            }
            txn.commit().unwrap();
        }

        fn commit(&mut self, ops: &[Op], clients: &[String]) {
            let txn = begin(&self.db, self.quick_repair);
            let client = |s: usize| clients[s].as_str();
            if self.open_per_op {
                for op in ops {
                    match op {
                        Op::PutMessage { id, body } => {
                            txn.open_table(MESSAGES).unwrap().insert(*id, &body[..]).unwrap();
                        }
                        Op::PutEntry { session, entry, record } => {
                            let key = (client(*session), *entry);
                            txn.open_table(QUEUE).unwrap().insert(key, &record[..]).unwrap();
                        }
                        Op::DelEntry { session, entry } => {
                            let key = (client(*session), *entry);
                            let mut queue = txn.open_table(QUEUE).unwrap();
                            let gone = queue.remove(key).unwrap().is_some();
                            assert!(gone);
                        }
                        Op::DelMessage { id } => {
                            txn.open_table(MESSAGES).unwrap().remove(*id).unwrap();
                        }
                    }
                }
            } else {
                let mut messages = txn.open_table(MESSAGES).unwrap();
                let mut queue = txn.open_table(QUEUE).unwrap();
                for op in ops {
                    match op {
                        Op::PutMessage { id, body } => {
                            messages.insert(*id, &body[..]).unwrap();
                        }
                        Op::PutEntry { session, entry, record } => {
                            queue.insert((client(*session), *entry), &record[..]).unwrap();
                        }
                        Op::DelEntry { session, entry } => {
                            // The broker uses the returned old value to know
                            // whether a reference went away.
                            let gone = queue.remove((client(*session), *entry)).unwrap().is_some();
                            assert!(gone);
                        }
                        Op::DelMessage { id } => {
                            messages.remove(*id).unwrap();
                        }
                    }
                }
                drop((messages, queue));
            }
            txn.commit().expect("commit");
        }

        fn close(self: Box<Self>) {
            drop(self.db);
        }
    }
}

mod fjall_engine {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct Fjall {
        pub db: Database,
        pub sessions: Keyspace,
        pub messages: Keyspace,
        pub queue: Keyspace,
        pub mode: PersistMode,
    }

    pub fn open(dir: &Path) -> (Database, Keyspace, Keyspace, Keyspace) {
        let db = Database::builder(dir.join("fjall"))
            .cache_size(CACHE_BYTES as u64)
            .open()
            .expect("open fjall");
        let ks = |name| db.keyspace(name, KeyspaceCreateOptions::default).expect("keyspace");
        let (s, m, q) = (ks("sessions"), ks("messages"), ks("queue"));
        (db, s, m, q)
    }

    /// (client id, entry id) as bytes: client id, a 0 byte (MQTT client
    /// ids cannot contain U+0000), then the entry id big-endian, so a
    /// session's entries are contiguous and in order, as in redb.
    pub fn queue_key(client: &str, entry: u64) -> Vec<u8> {
        let mut k = Vec::with_capacity(client.len() + 9);
        k.extend_from_slice(client.as_bytes());
        k.push(0);
        k.extend_from_slice(&entry.to_be_bytes());
        k
    }

    impl Engine for Fjall {
        fn create_sessions(&mut self, clients: &[String]) {
            let mut b = self.db.batch().durability(Some(self.mode));
            for c in clients {
                b.insert(&self.sessions, c.as_bytes(), &[0u8; 13][..]);
            }
            b.commit().unwrap();
        }

        /// One write batch: atomic across keyspaces; with
        /// `durability(Some(SyncData|SyncAll))` commit() writes the batch to
        /// the journal and fdatasyncs/fsyncs the journal file before
        /// returning (fjall 3.1 src/batch/mod.rs, journal/writer.rs). Memtable
        /// flushes and compactions run on fjall's background threads.
        fn commit(&mut self, ops: &[Op], clients: &[String]) {
            let mut b = self.db.batch().durability(Some(self.mode));
            for op in ops {
                match op {
                    Op::PutMessage { id, body } => {
                        b.insert(&self.messages, &id.to_be_bytes()[..], &body[..]);
                    }
                    Op::PutEntry { session, entry, record } => {
                        b.insert(&self.queue, &queue_key(&clients[*session], *entry)[..], &record[..]);
                    }
                    // Blind deletes (tombstones): fjall cannot tell whether
                    // the key existed without a separate read.
                    Op::DelEntry { session, entry } => {
                        b.remove(&self.queue, &queue_key(&clients[*session], *entry)[..]);
                    }
                    Op::DelMessage { id } => {
                        b.remove(&self.messages, &id.to_be_bytes()[..]);
                    }
                }
            }
            b.commit().expect("commit");
        }

        fn close(self: Box<Self>) {
            let Fjall { db, sessions, messages, queue, .. } = *self;
            drop((sessions, messages, queue));
            drop(db);
        }
    }
}

fn open_engine(engine: &str, dir: &Path, w: &Workload) -> Box<dyn Engine> {
    match engine {
        "redb" => Box::new(redb_engine::Redb {
            db: redb_engine::open(dir),
            open_per_op: w.redb_open_per_op,
            quick_repair: !w.redb_no_quick_repair,
        }),
        "fjall" => {
            let (db, sessions, messages, queue) = fjall_engine::open(dir);
            Box::new(fjall_engine::Fjall {
                db,
                sessions,
                messages,
                queue,
                mode: if w.sync_all { fjall::PersistMode::SyncAll } else { fjall::PersistMode::SyncData },
            })
        }
        e => panic!("unknown engine {e}"),
    }
}

// ---------------------------------------------------------------- phases

/// Write phase: set up the sessions (not timed), then every batch is one
/// durable commit; messages/s counts from the first batch to the last
/// commit's return.
fn run(engine: &str, dir: &Path, w: Workload) {
    let mut db = open_engine(engine, dir, &w);
    let mut generator = Generator::new(w.clone());
    let clients = generator.clients.clone();
    db.create_sessions(&clients);
    let mut ops = Vec::new();
    let mut latencies = Vec::with_capacity(generator.batches());
    let mut in_commit = Duration::ZERO;
    let started = Instant::now();
    for b in 0..generator.batches() {
        generator.batch(b, &mut ops);
        let t = Instant::now();
        db.commit(&ops, &clients);
        let d = t.elapsed();
        in_commit += d;
        latencies.push(d);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let queued: usize = generator.refs.values().map(|&n| n as usize).sum();
    print!(
        "engine={engine} msgs_per_s={:.0} secs={secs:.3} commit_secs={:.3} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} queued_entries={queued} bodies={} ",
        w.total as f64 / secs,
        in_commit.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
        generator.refs.len(),
    );
    if w.crash {
        println!("close_secs=0");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        // No destructor runs: as if the process were killed right after
        // its last fsynced commit.
        std::process::exit(0);
    }
    let t = Instant::now();
    db.close();
    println!("close_secs={:.3}", t.elapsed().as_secs_f64());
}

/// Recovery: what the broker's `recover` does at start-up: open the
/// database, read the sessions, the highest message id, and every queue
/// entry (decoding the record and counting references per body). Bodies
/// are not read.
fn recover(engine: &str, dir: &Path) {
    let t = Instant::now();
    let (open_secs, sessions, entries, bodies, max_id);
    match engine {
        "redb" => {
            use redb::{ReadableDatabase, ReadableTable};
            use redb_engine::*;
            let db = open(dir);
            open_secs = t.elapsed().as_secs_f64();
            let txn = db.begin_read().unwrap();
            sessions = txn.open_table(SESSIONS).unwrap().iter().unwrap().count();
            let messages = txn.open_table(MESSAGES).unwrap();
            let mut max = messages.last().unwrap().map_or(0, |(k, _)| k.value());
            let mut refs: HashMap<u64, u32> = HashMap::new();
            let mut n = 0;
            for row in txn.open_table(QUEUE).unwrap().iter().unwrap() {
                let (k, v) = row.unwrap();
                let (_client, entry) = k.value();
                max = max.max(entry);
                let message = u64::from_be_bytes(v.value()[0..8].try_into().unwrap());
                *refs.entry(message).or_default() += 1;
                n += 1;
            }
            entries = n;
            bodies = refs.len();
            max_id = max;
        }
        "fjall" => {
            let (db, s, m, q) = fjall_engine::open(dir);
            open_secs = t.elapsed().as_secs_f64();
            sessions = s.iter().count();
            let mut max = m
                .last_key_value()
                .map_or(0, |g| u64::from_be_bytes(g.key().unwrap()[..].try_into().unwrap()));
            let mut refs: HashMap<u64, u32> = HashMap::new();
            let mut n = 0;
            for g in q.iter() {
                let (k, v) = g.into_inner().unwrap();
                let entry = u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap());
                max = max.max(entry);
                let message = u64::from_be_bytes(v[0..8].try_into().unwrap());
                *refs.entry(message).or_default() += 1;
                n += 1;
            }
            entries = n;
            bodies = refs.len();
            max_id = max;
            drop((s, m, q));
            drop(db);
        }
        e => panic!("unknown engine {e}"),
    }
    let total = t.elapsed().as_secs_f64();
    println!(
        "recover_secs={total:.3} open_secs={open_secs:.3} sessions={sessions} entries={entries} bodies={bodies} max_id={max_id}"
    );
}

// ---------------------------------------------------------------- driver

/// Allocated bytes (st_blocks) and apparent bytes of everything under `dir`.
fn disk_usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut alloc = 0;
    let mut len = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        if m.is_dir() {
            let (a, l) = disk_usage(&e.path());
            alloc += a;
            len += l;
        } else {
            alloc += m.blocks() * 512;
            len += m.len();
        }
    }
    (alloc, len)
}

fn parse_kv(s: &str) -> HashMap<String, String> {
    s.split_whitespace()
        .filter_map(|t| t.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn child(args: &[String]) -> HashMap<String, String> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe).args(args).output().expect("spawn");
    if !out.status.success() {
        panic!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_kv(&String::from_utf8_lossy(&out.stdout))
}

struct Sample {
    msgs: f64,
    p99_ms: f64,
    alloc: u64,
    len: u64,
    recover: f64,
    open: f64,
    entries: u64,
}

fn one(engine: &str, w: &Workload, base: &Path, n: usize) -> Sample {
    let dir = base.join(format!("{engine}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut args = vec!["run".into(), "--engine".into(), engine.into(), "--dir".into(), dir.display().to_string()];
    args.extend(w.args());
    let r = child(&args);
    let (alloc, len) = disk_usage(&dir);
    let rec = child(&["recover".into(), "--engine".into(), engine.into(), "--dir".into(), dir.display().to_string()]);
    std::fs::remove_dir_all(&dir).unwrap();
    let f = |m: &HashMap<String, String>, k: &str| m[k].parse::<f64>().unwrap();
    let s = Sample {
        msgs: f(&r, "msgs_per_s"),
        p99_ms: f(&r, "p99_ms"),
        alloc,
        len,
        recover: f(&rec, "recover_secs"),
        open: f(&rec, "open_secs"),
        entries: f(&rec, "entries") as u64,
    };
    assert_eq!(s.entries, f(&r, "queued_entries") as u64, "recovered entries differ from queued");
    eprintln!(
        "  {engine:5} {:>9.0} msg/s  p99 {:>7.2} ms  disk {:>7.1} MiB (apparent {:>7.1})  recover {:.3}s (open {:.3}s, {} entries)",
        s.msgs,
        s.p99_ms,
        s.alloc as f64 / 1048576.0,
        s.len as f64 / 1048576.0,
        s.recover,
        s.open,
        s.entries
    );
    s
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn matrix(runs: usize, base: &Path, selected: Option<&str>, common: &Workload) {
    let c = |name: &str, f: &dyn Fn(&mut Workload)| {
        let mut w = common.clone();
        f(&mut w);
        (name.to_string(), w)
    };
    let configs = vec![
        c("64B fan-out 1", &|w| w.payload = 64),
        c("1KiB fan-out 1", &|w| w.payload = 1024),
        c("64B fan-out 4", &|w| {
            w.payload = 64;
            w.fanout = 4
        }),
        c("1KiB fan-out 4", &|w| {
            w.payload = 1024;
            w.fanout = 4
        }),
        c("64B acks stop halfway", &|w| {
            w.payload = 64;
            w.ack_frac = 0.5
        }),
        c("1KiB acks stop halfway", &|w| {
            w.payload = 1024;
            w.ack_frac = 0.5
        }),
        c("1KiB halfway, crash", &|w| {
            w.payload = 1024;
            w.ack_frac = 0.5;
            w.crash = true
        }),
    ];
    let mut rows = Vec::new();
    let mut n = 0;
    for (name, w) in configs {
        if selected.is_some_and(|s| !name.contains(s)) {
            continue;
        }
        eprintln!("== {name}: {w:?}");
        let mut samples: HashMap<&str, Vec<Sample>> = HashMap::new();
        for r in 0..runs {
            // Alternate which engine goes first.
            let order = if r % 2 == 0 { ["redb", "fjall"] } else { ["fjall", "redb"] };
            for e in order {
                n += 1;
                samples.entry(e).or_default().push(one(e, &w, base, n));
            }
        }
        let m = |e: &str, f: &dyn Fn(&Sample) -> f64| median(samples[e].iter().map(f).collect());
        let row = format!(
            "| {name} | {:.0} | {:.0} | {:.2}x | {:.1} / {:.1} | {:.1} / {:.1} | {:.3} / {:.3} | {} |",
            m("redb", &|s| s.msgs),
            m("fjall", &|s| s.msgs),
            m("fjall", &|s| s.msgs) / m("redb", &|s| s.msgs),
            m("redb", &|s| s.p99_ms),
            m("fjall", &|s| s.p99_ms),
            m("redb", &|s| s.alloc as f64) / 1048576.0,
            m("fjall", &|s| s.alloc as f64) / 1048576.0,
            m("redb", &|s| s.recover),
            m("fjall", &|s| s.recover),
            samples["redb"][0].entries,
        );
        eprintln!("{row}");
        rows.push(row);
    }
    println!("\nmedians of {runs} runs (engines alternated); disk = allocated MiB after the write phase");
    println!("| config | redb msg/s | fjall msg/s | fjall/redb | p99 batch ms redb / fjall | disk MiB redb / fjall | recovery s redb / fjall | queue entries left |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("help");
    let mut w = Workload::default();
    let mut engine = String::new();
    let mut dir = PathBuf::from("/tmp");
    let mut runs = 3;
    let mut only = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().expect("missing value").clone();
        match a.as_str() {
            "--engine" => engine = val(),
            "--dir" => dir = PathBuf::from(val()),
            "--sessions" => w.sessions = val().parse().unwrap(),
            "--batch" => w.batch = val().parse().unwrap(),
            "--payload" => w.payload = val().parse().unwrap(),
            "--total" => w.total = val().parse().unwrap(),
            "--fanout" => w.fanout = val().parse().unwrap(),
            "--lag" => w.lag = val().parse().unwrap(),
            "--ack-frac" => w.ack_frac = val().parse().unwrap(),
            "--runs" => runs = val().parse().unwrap(),
            "--only" => only = Some(val()),
            "--sync-all" => w.sync_all = true,
            "--redb-open-per-op" => w.redb_open_per_op = true,
            "--redb-no-quick-repair" => w.redb_no_quick_repair = true,
            "--crash" => w.crash = true,
            other => panic!("unknown argument {other}"),
        }
    }
    match cmd {
        "run" => run(&engine, &dir, w),
        "recover" => recover(&engine, &dir),
        "matrix" => matrix(runs, &dir, only.as_deref(), &w),
        _ => eprintln!(
            "usage: engine-bench run|recover --engine redb|fjall --dir DIR [flags]\n       engine-bench matrix [--dir /tmp] [--runs 3] [--only NAME] [flags]\n flags: --sessions N --batch N --payload N --total N --fanout N --lag N --ack-frac F --sync-all --redb-open-per-op --redb-no-quick-repair --crash"
        ),
    }
}
