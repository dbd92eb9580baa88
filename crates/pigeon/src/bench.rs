//! `pigeon bench`: a load generator in the spirit of emqtt-bench, built on
//! `pigeon-client`.
//!
//! - `bench conn`: N connections opened at a rate and held; connect times.
//! - `bench pub`: N publishers, each at a rate or as fast as the window
//!   allows; messages sent and completed per second.
//! - `bench sub`: N subscribers; messages received per second, and the
//!   latency of messages `bench pub` sent (same machine, same clock).
//! - `bench run --scenario fanin|fanout|pairs`: publishers and subscribers
//!   in one process; end-to-end latency (an HDR histogram), delivered
//!   msg/s, and lost and duplicated messages per the QoS.
//! - `bench sink`: a broker stand-in that answers CONNECT, SUBSCRIBE and
//!   QoS 1/2 handshakes and drops every message, to measure the generator
//!   alone.
//!
//! Each payload starts with the send time (Unix nanoseconds, 8 bytes), the
//! publisher's index (4 bytes) and its sequence number (8 bytes); the rest
//! is padding up to `--size`. Subscribers read these to measure latency and
//! to count lost and duplicated messages: a publisher's messages reach a
//! subscriber in order (MQTT orders them per topic and QoS), so a sequence
//! number at or below the last seen is a duplicate, and what was sent but
//! never seen is lost.
//!
//! Everything is bounded: `--duration` (default 10 s) and `--count`. A live
//! line on a terminal (indicatif) shows the rates as they go; at the end a
//! table, or `--json`.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use pigeon_client::proto::codec::{ConnAck, Publish, SubAck};
use pigeon_client::proto::topic::TopicName;
use pigeon_client::proto::{decode, Packet, Protocol, QoS, ReasonCode};
use pigeon_client::{AsyncClient, Event, Options, Publication};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Open connections at a rate and hold them
    Conn(Load),
    /// Publish from N clients
    Pub(Load),
    /// Subscribe with N clients and count what arrives
    Sub(Load),
    /// Publishers and subscribers together: latency, loss, duplicates
    Run(RunArgs),
    /// A stand-in broker that drops every message (to measure the generator)
    Sink(SinkArgs),
}

/// The load every mode shares.
#[derive(Args, Debug, Clone)]
struct Load {
    /// Broker host
    #[arg(
        long = "host",
        default_value = "127.0.0.1",
        help_heading = "Connection"
    )]
    host: String,
    /// Broker port
    #[arg(
        short = 'p',
        long = "port",
        default_value_t = 1883,
        help_heading = "Connection"
    )]
    port: u16,
    /// MQTT version: 5, 311 or 31
    #[arg(short = 'V', long = "protocol-version", default_value = "311", value_parser = parse_version, help_heading = "Connection")]
    version: Protocol,
    /// User name
    #[arg(short = 'u', long = "username", help_heading = "Connection")]
    username: Option<String>,
    /// Password
    #[arg(short = 'P', long = "pw", help_heading = "Connection")]
    password: Option<String>,
    /// Transport: tcp, tls, ws or wss (WebSocket at /mqtt)
    #[arg(
        long = "transport",
        value_enum,
        default_value = "tcp",
        help_heading = "Connection"
    )]
    transport: BenchTransport,
    /// PEM CA file for tls and wss [default: the system's CAs]
    #[arg(long = "cafile", help_heading = "Connection")]
    cafile: Option<std::path::PathBuf>,
    /// Clients (connections, publishers or subscribers)
    #[arg(
        short = 'c',
        long = "clients",
        default_value_t = 1,
        help_heading = "Load"
    )]
    clients: u32,
    /// New connections per second (0: all at once)
    #[arg(long = "connect-rate", default_value_t = 0, help_heading = "Load")]
    connect_rate: u32,
    /// Topic; %i is the client's index
    #[arg(
        short = 't',
        long = "topic",
        default_value = "bench/%i",
        help_heading = "Load"
    )]
    topic: String,
    /// QoS
    #[arg(short = 'q', long = "qos", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2), help_heading = "Load")]
    qos: u8,
    /// Payload size in bytes (at least 20: time, publisher, sequence)
    #[arg(
        short = 's',
        long = "size",
        default_value_t = 64,
        help_heading = "Load"
    )]
    size: usize,
    /// Messages per second per publisher (0: as fast as the window allows)
    #[arg(short = 'r', long = "rate", default_value_t = 0, help_heading = "Load")]
    rate: u64,
    /// Messages in flight per publisher (QoS 0: queued in the client)
    #[arg(
        short = 'w',
        long = "window",
        default_value_t = 100,
        help_heading = "Load"
    )]
    window: usize,
    /// Seconds to run
    #[arg(
        short = 'd',
        long = "duration",
        default_value_t = 10.0,
        help_heading = "Load"
    )]
    duration: f64,
    /// Stop each publisher after this many messages
    #[arg(short = 'n', long = "count", help_heading = "Load")]
    count: Option<u64>,
    /// Print the result as JSON
    #[arg(long = "json", help_heading = "Output")]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchTransport {
    Tcp,
    Tls,
    Ws,
    Wss,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// fanin: N publishers → 1 subscriber; fanout: 1 publisher → N
    /// subscribers; pairs: N publisher → subscriber pairs
    #[arg(long = "scenario", value_enum)]
    scenario: Scenario,
    #[command(flatten)]
    load: Load,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Fanin,
    Fanout,
    Pairs,
}

#[derive(Args, Debug)]
struct SinkArgs {
    /// Port to listen on (127.0.0.1)
    #[arg(short = 'p', long = "port", default_value_t = 1884)]
    port: u16,
}

fn parse_version(s: &str) -> Result<Protocol, String> {
    match s {
        "5" | "mqttv5" => Ok(Protocol::V5),
        "311" | "mqttv311" => Ok(Protocol::V3_1_1),
        "31" | "mqttv31" => Ok(Protocol::V3_1),
        _ => Err("use 5, 311 or 31".into()),
    }
}

pub fn run(args: BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pigeon bench: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            BenchCommand::Conn(load) => connections(load).await,
            BenchCommand::Pub(load) => traffic(load, None, true, false).await,
            BenchCommand::Sub(load) => traffic(load, None, false, true).await,
            BenchCommand::Run(run) => traffic(run.load, Some(run.scenario), true, true).await,
            BenchCommand::Sink(sink) => self::sink(sink.port).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pigeon bench: {e}");
            ExitCode::from(1)
        }
    }
}

impl Load {
    fn check(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.size < HEADER {
            return Err(format!(
                "--size must be at least {HEADER} bytes (send time, publisher, sequence)"
            ));
        }
        if !(self.duration.is_finite() && self.duration > 0.0) {
            return Err("--duration must be a positive number of seconds".into());
        }
        if self.window == 0 {
            return Err("--window must be at least 1".into());
        }
        Ok(())
    }

    fn options(&self, id: String) -> Options {
        let mut o = Options::new(self.host.clone(), self.port)
            .client_id(id)
            .protocol(self.version)
            .reconnect(None);
        if matches!(self.transport, BenchTransport::Ws | BenchTransport::Wss) {
            o = o.websocket("/mqtt");
        }
        if matches!(self.transport, BenchTransport::Tls | BenchTransport::Wss) {
            o = o.tls(pigeon_client::TlsOptions {
                ca_file: self.cafile.clone(),
                ..Default::default()
            });
        }
        o.max_inflight = u16::try_from(self.window).unwrap_or(u16::MAX).max(1);
        o.max_queued = self.window.max(10_000);
        if let Some(user) = &self.username {
            o = o.credentials(user, self.password.as_deref().map(str::as_bytes));
        }
        o
    }

    fn qos(&self) -> QoS {
        QoS::from_u8(self.qos).unwrap_or(QoS::AtMostOnce)
    }

    fn topic(&self, index: u32) -> String {
        self.topic.replace("%i", &index.to_string())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }
}

/// Send time, publisher index, sequence number.
const HEADER: usize = 20;

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn payload(size: usize, publisher: u32, seq: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_u64(unix_nanos());
    b.put_u32(publisher);
    b.put_u64(seq);
    b.resize(size, b'x');
    b.freeze()
}

/// Connects one client; its handle and events, or why not.
async fn connect(options: Options) -> Result<(AsyncClient, pigeon_client::Events), String> {
    let address = options.address();
    let (client, mut events) = AsyncClient::new(options);
    loop {
        match events.recv().await {
            Some(Event::Connected { .. }) => return Ok((client, events)),
            Some(Event::ConnectFailed(e)) => return Err(format!("{address}: {e}")),
            Some(_) => continue,
            None => return Err(format!("{address}: the connection ended")),
        }
    }
}

/// Waits so that connection `i` starts at `i / rate` seconds.
async fn pace(started: Instant, index: u32, rate: u32) {
    if rate > 0 {
        let at = started + Duration::from_secs_f64(f64::from(index) / f64::from(rate));
        tokio::time::sleep_until(at.into()).await;
    }
}

/// Counters the clients update and the progress line reads.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    sent: AtomicU64,
    completed: AtomicU64,
    received: AtomicU64,
}

/// What each subscriber saw, merged at the end.
struct Seen {
    latency: Histogram<u64>,
    /// (publisher, subscriber) → (highest sequence, distinct count).
    streams: HashMap<(u32, u32), (u64, u64)>,
    duplicates: u64,
}

impl Seen {
    fn new() -> Seen {
        Seen {
            latency: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!())),
            streams: HashMap::new(),
            duplicates: 0,
        }
    }

    fn record(&mut self, subscriber: u32, payload: &[u8], now: u64) {
        if payload.len() < HEADER {
            return;
        }
        let sent = u64::from_be_bytes(payload[0..8].try_into().unwrap_or([0; 8]));
        let publisher = u32::from_be_bytes(payload[8..12].try_into().unwrap_or([0; 4]));
        let seq = u64::from_be_bytes(payload[12..20].try_into().unwrap_or([0; 8]));
        let _ = self.latency.record(now.saturating_sub(sent).max(1));
        let entry = self
            .streams
            .entry((publisher, subscriber))
            .or_insert((0, 0));
        if seq <= entry.0 && entry.1 > 0 {
            self.duplicates += 1;
        } else {
            *entry = (seq, entry.1 + 1);
        }
    }
}

async fn connections(load: Load) -> Result<(), String> {
    load.check()?;
    let counters = Arc::new(Counters::default());
    let times = Arc::new(Mutex::new(Seen::new()));
    let started = Instant::now();
    let progress = Progress::start(counters.clone(), "conn");
    let mut held = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..load.clients {
        pace(started, i, load.connect_rate).await;
        if started.elapsed() > load.duration() {
            break;
        }
        let (load, counters, times) = (load.clone(), counters.clone(), times.clone());
        tasks.push(tokio::spawn(async move {
            let begun = Instant::now();
            match connect(load.options(format!("bench-conn-{i}"))).await {
                Ok(client) => {
                    counters.connected.fetch_add(1, Ordering::Relaxed);
                    let micros = u64::try_from(begun.elapsed().as_micros()).unwrap_or(u64::MAX);
                    if let Ok(mut t) = times.lock() {
                        let _ = t.latency.record(micros.max(1) * 1000);
                    }
                    Some(client)
                }
                Err(e) => {
                    if counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("pigeon bench: {e}");
                    }
                    None
                }
            }
        }));
    }
    for task in tasks {
        if let Ok(Some(client)) = task.await {
            held.push(client);
        }
    }
    let rest = load.duration().saturating_sub(started.elapsed());
    tokio::time::sleep(rest).await;
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let connected = counters.connected.load(Ordering::Relaxed);
    let failed = counters.failed.load(Ordering::Relaxed);
    let latency = Latency::of(&times.lock().map_err(|_| "a client task panicked")?.latency);
    let report = Report {
        mode: "conn".into(),
        clients: load.clients,
        qos: load.qos,
        size: load.size,
        seconds: elapsed,
        connected,
        failed,
        sent: 0,
        completed: 0,
        received: 0,
        expected: 0,
        lost: 0,
        duplicated: 0,
        latency,
    };
    report.print(load.json);
    for (client, _events) in held {
        let _ = client.disconnect().await;
    }
    match connected {
        0 => Err("no connection succeeded".into()),
        _ => Ok(()),
    }
}

/// Publishers, subscribers or both (a scenario).
async fn traffic(
    load: Load,
    scenario: Option<Scenario>,
    publish: bool,
    subscribe: bool,
) -> Result<(), String> {
    load.check()?;
    let n = load.clients;
    // Who publishes where, who subscribes to what.
    let (publishers, subscribers): (Vec<String>, Vec<String>) = match scenario {
        None if publish => ((0..n).map(|i| load.topic(i)).collect(), Vec::new()),
        None => (Vec::new(), (0..n).map(|i| load.topic(i)).collect()),
        Some(Scenario::Fanin) => (
            (0..n).map(|i| load.topic(i)).collect(),
            vec![load.topic.replace("%i", "+")],
        ),
        Some(Scenario::Fanout) => (vec![load.topic(0)], (0..n).map(|_| load.topic(0)).collect()),
        Some(Scenario::Pairs) => (
            (0..n).map(|i| load.topic(i)).collect(),
            (0..n).map(|i| load.topic(i)).collect(),
        ),
    };
    for topic in &publishers {
        TopicName::try_from(topic.as_str()).map_err(|e| {
            format!("cannot publish to {topic:?}: {e} (wildcards are for -t of sub)")
        })?;
    }
    let counters = Arc::new(Counters::default());
    let seen = Arc::new(Mutex::new(Seen::new()));
    let started = Instant::now();
    let mode = match scenario {
        Some(Scenario::Fanin) => "run fanin",
        Some(Scenario::Fanout) => "run fanout",
        Some(Scenario::Pairs) => "run pairs",
        None if publish => "pub",
        None => "sub",
    };
    let progress = Progress::start(counters.clone(), mode);
    // Subscribers first, so no message is published before they listen.
    let mut subscriber_tasks = Vec::new();
    let stop = Arc::new(tokio::sync::Notify::new());
    for (index, filter) in subscribers.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        pace(started, index, load.connect_rate).await;
        let (client, mut events) = match connect(load.options(format!("bench-sub-{index}"))).await {
            Ok(c) => c,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        counters.connected.fetch_add(1, Ordering::Relaxed);
        client
            .subscribe(filter, load.qos())
            .await
            .map_err(|e| format!("subscribe to {filter}: {e}"))?;
        let (counters, seen, stop) = (counters.clone(), seen.clone(), stop.clone());
        subscriber_tasks.push(tokio::spawn(async move {
            let mut local = Seen::new();
            let stopped = stop.notified();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    () = &mut stopped => break,
                    event = events.recv() => match event {
                        Some(Event::Message(m)) => {
                            counters.received.fetch_add(1, Ordering::Relaxed);
                            local.record(index, &m.payload, unix_nanos());
                        }
                        Some(Event::Disconnected { .. }) | None => break,
                        Some(_) => {}
                    },
                }
            }
            let _ = client.disconnect().await;
            if let Ok(mut all) = seen.lock() {
                let _ = all.latency.add(&local.latency);
                all.duplicates += local.duplicates;
                all.streams.extend(local.streams);
            }
        }));
    }
    let mut publisher_tasks = Vec::new();
    for (index, topic) in publishers.iter().enumerate() {
        let index = u32::try_from(index).unwrap_or(u32::MAX);
        pace(started, index, load.connect_rate).await;
        if load.qos == 0 && load.transport == BenchTransport::Tcp {
            // QoS 0 over TCP: frames written straight to the socket (see
            // `raw`).
            let (load, counters, topic) = (load.clone(), counters.clone(), topic.clone());
            publisher_tasks.push(tokio::spawn(async move {
                match raw::publisher(&load, index, &topic, &counters, started).await {
                    Ok(sent) => sent,
                    Err(e) => {
                        if counters.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("pigeon bench: {e}");
                        }
                        0
                    }
                }
            }));
            continue;
        }
        let (client, events) = match connect(load.options(format!("bench-pub-{index}"))).await {
            Ok(c) => c,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        counters.connected.fetch_add(1, Ordering::Relaxed);
        let (load, counters, topic) = (load.clone(), counters.clone(), topic.clone());
        publisher_tasks.push(tokio::spawn(async move {
            // The events are read (a full event channel would stall the
            // connection); completions are counted as they are awaited.
            let drain = tokio::spawn(async move {
                let mut events = events;
                while events.recv().await.is_some() {}
            });
            let sent = publisher(&client, &load, index, &topic, &counters, started).await;
            let _ = client.disconnect().await;
            drain.abort();
            sent
        }));
    }
    let mut sent_by = Vec::new();
    for task in publisher_tasks {
        sent_by.push(task.await.unwrap_or(0));
    }
    if !subscribe {
        progress.finish();
    }
    let publishing_ended = started.elapsed();
    if subscribe {
        // Wait for what is still on its way (bounded), then stop.
        let expected_total = expected(&sent_by, scenario, n);
        let grace = match publish {
            true => Duration::from_secs(5),
            false => load.duration().saturating_sub(started.elapsed()),
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if publish && counters.received.load(Ordering::Relaxed) >= expected_total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.notify_waiters();
        for task in subscriber_tasks {
            let _ = task.await;
        }
        progress.finish();
    }
    let seconds = match publish {
        true => publishing_ended.as_secs_f64(),
        false => started.elapsed().as_secs_f64(),
    };
    let seen = seen.lock().map_err(|_| "a subscriber task panicked")?;
    let distinct: u64 = seen.streams.values().map(|(_, count)| count).sum();
    let expected_total = match (publish, subscribe) {
        (true, true) => expected(&sent_by, scenario, n),
        _ => 0,
    };
    let report = Report {
        mode: mode.into(),
        clients: n,
        qos: load.qos,
        size: load.size,
        seconds,
        connected: counters.connected.load(Ordering::Relaxed),
        failed: counters.failed.load(Ordering::Relaxed),
        sent: sent_by.iter().sum(),
        completed: counters.completed.load(Ordering::Relaxed),
        received: counters.received.load(Ordering::Relaxed),
        expected: expected_total,
        lost: expected_total.saturating_sub(distinct),
        duplicated: seen.duplicates,
        latency: Latency::of(&seen.latency),
    };
    report.print(load.json);
    Ok(())
}

/// How many deliveries the publishers' messages should make.
fn expected(sent_by: &[u64], scenario: Option<Scenario>, n: u32) -> u64 {
    let sent: u64 = sent_by.iter().sum();
    match scenario {
        Some(Scenario::Fanout) => sent * u64::from(n),
        _ => sent,
    }
}

/// One publisher's loop; returns how many messages it handed over.
async fn publisher(
    client: &AsyncClient,
    load: &Load,
    index: u32,
    topic: &str,
    counters: &Counters,
    started: Instant,
) -> u64 {
    let Ok(topic) = TopicName::try_from(topic) else {
        return 0;
    };
    let qos = load.qos();
    let until = started + load.duration();
    let limit = load.count.unwrap_or(u64::MAX);
    let mut window: VecDeque<Publication> = VecDeque::new();
    let mut sent = 0u64;
    let begun = Instant::now();
    while sent < limit && Instant::now() < until {
        if load.rate > 0 {
            // Send what the rate allows by now, then wait a little.
            let due = (begun.elapsed().as_secs_f64() * load.rate as f64) as u64;
            if sent >= due {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        }
        let mut message = Publish::new(topic.clone(), payload(load.size, index, sent + 1));
        message.qos = qos;
        let Ok(publication) = client.publish_message(message) else {
            break;
        };
        sent += 1;
        counters.sent.fetch_add(1, Ordering::Relaxed);
        window.push_back(publication);
        if window.len() >= load.window {
            if let Some(oldest) = window.pop_front() {
                if oldest.wait().await.is_err() {
                    break;
                }
                counters.completed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if sent % 256 == 0 {
            tokio::task::yield_now().await;
        }
    }
    for publication in window {
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(5), publication.wait()).await {
            counters.completed.fetch_add(1, Ordering::Relaxed);
        }
    }
    sent
}

/// The QoS 0 publisher: the client library's per-message work (a request,
/// a completion channel, the flow) would make the generator the
/// bottleneck, so after a CONNECT / CONNACK made with the codec it copies
/// one encoded PUBLISH per message, patching time and sequence into the
/// payload, and writes them in 64 KiB batches.
mod raw {
    use super::*;
    use pigeon_client::proto::codec::{Connect, Disconnect};
    use pigeon_client::proto::string::MqttStr;

    pub async fn publisher(
        load: &Load,
        index: u32,
        topic: &str,
        counters: &Counters,
        started: Instant,
    ) -> Result<u64, String> {
        let address = format!("{}:{}", load.host, load.port);
        let fail = |e: &dyn std::fmt::Display| format!("{address}: {e}");
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| fail(&e))?;
        let _ = stream.set_nodelay(true);
        let id = MqttStr::try_from(format!("bench-pub-{index}").as_str()).map_err(|e| fail(&e))?;
        let mut connect = Connect::new(load.version, id);
        connect.keep_alive = 0;
        connect.username = load
            .username
            .as_deref()
            .and_then(|u| MqttStr::try_from(u).ok());
        connect.password = load.password.as_ref().map(|p| Bytes::from(p.clone()));
        let mut out = BytesMut::with_capacity(64 * 1024);
        Packet::Connect(Box::new(connect))
            .encode(load.version, &mut out)
            .map_err(|e| fail(&e))?;
        stream.write_all(&out).await.map_err(|e| fail(&e))?;
        out.clear();
        let mut incoming = BytesMut::with_capacity(1024);
        loop {
            match decode(&mut incoming, load.version, u32::MAX) {
                Ok(Some(Packet::ConnAck(a))) if !a.reason_code.is_error() => break,
                Ok(Some(Packet::ConnAck(a))) => {
                    return Err(fail(&format!("refused: {}", a.reason_code)))
                }
                Ok(Some(_)) => continue,
                Ok(None) => {
                    if stream.read_buf(&mut incoming).await.map_err(|e| fail(&e))? == 0 {
                        return Err(fail(&"closed before CONNACK"));
                    }
                }
                Err(e) => return Err(fail(&e)),
            }
        }
        counters.connected.fetch_add(1, Ordering::Relaxed);
        let topic = TopicName::try_from(topic).map_err(|e| fail(&e))?;
        let mut template = BytesMut::new();
        Packet::Publish(Publish::new(topic, payload(load.size, index, 0)))
            .encode(load.version, &mut template)
            .map_err(|e| fail(&e))?;
        let at = template.len() - load.size;
        let until = started + load.duration();
        let limit = load.count.unwrap_or(u64::MAX);
        let begun = Instant::now();
        let mut sent = 0u64;
        let index_bytes = index.to_be_bytes();
        while sent < limit && Instant::now() < until {
            let mut batch = ((64 * 1024) / template.len()).max(1) as u64;
            if load.rate > 0 {
                let due = (begun.elapsed().as_secs_f64() * load.rate as f64) as u64;
                batch = batch.min(due.saturating_sub(sent));
                if batch == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            }
            batch = batch.min(limit - sent);
            for _ in 0..batch {
                sent += 1;
                let start = out.len();
                out.extend_from_slice(&template);
                let header = &mut out[start + at..start + at + HEADER];
                header[0..8].copy_from_slice(&unix_nanos().to_be_bytes());
                header[8..12].copy_from_slice(&index_bytes);
                header[12..20].copy_from_slice(&sent.to_be_bytes());
            }
            stream.write_all(&out).await.map_err(|e| fail(&e))?;
            out.clear();
            counters.sent.fetch_add(batch, Ordering::Relaxed);
            counters.completed.fetch_add(batch, Ordering::Relaxed);
        }
        let _ = Packet::Disconnect(Disconnect::default()).encode(load.version, &mut out);
        let _ = stream.write_all(&out).await;
        let _ = stream.shutdown().await;
        Ok(sent)
    }
}

/// Latency percentiles, in microseconds.
#[derive(Debug, serde::Serialize)]
struct Latency {
    samples: u64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let us = |nanos: u64| nanos as f64 / 1000.0;
        Latency {
            samples: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct Report {
    mode: String,
    clients: u32,
    qos: u8,
    size: usize,
    seconds: f64,
    connected: u64,
    failed: u64,
    sent: u64,
    completed: u64,
    received: u64,
    expected: u64,
    lost: u64,
    duplicated: u64,
    latency: Latency,
}

impl Report {
    fn print(&self, json: bool) {
        if json {
            match serde_json::to_string_pretty(self) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("pigeon bench: {e}"),
            }
            return;
        }
        let rate = |n: u64| n as f64 / self.seconds.max(1e-9);
        println!(
            "{}: {} clients, QoS {}, {} B payloads, {:.2} s",
            self.mode, self.clients, self.qos, self.size, self.seconds
        );
        println!(
            "  connections  {:>12} ok {:>8} failed",
            group(self.connected),
            group(self.failed)
        );
        if self.sent > 0 {
            println!(
                "  sent         {:>12} msg {:>12} msg/s",
                group(self.sent),
                group(rate(self.sent) as u64)
            );
            println!(
                "  completed    {:>12} msg {:>12} msg/s   (QoS 0: written; 1: PUBACK; 2: PUBCOMP)",
                group(self.completed),
                group(rate(self.completed) as u64)
            );
        }
        if self.received > 0 || self.expected > 0 {
            println!(
                "  received     {:>12} msg {:>12} msg/s",
                group(self.received),
                group(rate(self.received) as u64)
            );
        }
        if self.expected > 0 {
            println!(
                "  lost         {:>12} of {} expected   duplicated {}",
                group(self.lost),
                group(self.expected),
                group(self.duplicated)
            );
        }
        if self.latency.samples > 0 {
            let what = match self.mode.as_str() {
                "conn" => "connect",
                _ => "latency",
            };
            println!(
                "  {what:<12} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                time(self.latency.p50_us),
                time(self.latency.p90_us),
                time(self.latency.p99_us),
                time(self.latency.p999_us),
                time(self.latency.max_us)
            );
        }
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn time(us: f64) -> String {
    match us {
        us if us >= 1_000_000.0 => format!("{:.2} s", us / 1_000_000.0),
        us if us >= 1000.0 => format!("{:.2} ms", us / 1000.0),
        us => format!("{us:.0} µs"),
    }
}

/// The live line: rates over the last half second, on a terminal only.
struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn start(counters: Arc<Counters>, mode: &'static str) -> Progress {
        let bar = match std::io::stderr().is_terminal() {
            true => indicatif::ProgressBar::new_spinner(),
            false => indicatif::ProgressBar::hidden(),
        };
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut last = (0u64, 0u64, Instant::now());
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let sent = counters.sent.load(Ordering::Relaxed);
                let received = counters.received.load(Ordering::Relaxed);
                let secs = last.2.elapsed().as_secs_f64().max(1e-9);
                let send_rate = (sent - last.0) as f64 / secs;
                let recv_rate = (received - last.1) as f64 / secs;
                last = (sent, received, Instant::now());
                shown.set_message(format!(
                    "{mode}: {} connected, sending {} msg/s, receiving {} msg/s, {} sent, {} received",
                    counters.connected.load(Ordering::Relaxed),
                    group(send_rate as u64),
                    group(recv_rate as u64),
                    group(sent),
                    group(received)
                ));
                shown.tick();
            }
        });
        Progress {
            task: Some(task),
            bar,
        }
    }

    fn finish(&self) {
        if let Some(task) = &self.task {
            task.abort();
        }
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `bench sink`: answers what a client waits for and drops the rest.
async fn sink(port: u16) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e} (try -p PORT)"))?;
    let received = Arc::new(AtomicU64::new(0));
    println!("pigeon bench sink on 127.0.0.1:{port}: drops every message");
    let counter = received.clone();
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = counter.load(Ordering::Relaxed);
            if now != last {
                println!("{} msg/s", group(now - last));
                last = now;
            }
        }
    });
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let _ = sink_connection(stream, &received).await;
        });
    }
}

async fn sink_connection(
    mut stream: tokio::net::TcpStream,
    received: &AtomicU64,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut out = BytesMut::new();
    let mut protocol = Protocol::V3_1_1;
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
        let mut count = 0;
        loop {
            // A QoS 0 PUBLISH is skipped from its fixed header alone.
            if let Some(size) = qos0_publish_len(&buf) {
                if buf.len() < size {
                    break;
                }
                let _ = buf.split_to(size);
                count += 1;
                continue;
            }
            let packet = match decode(&mut buf, protocol, u32::MAX) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(_) => return Ok(()),
            };
            let reply = match packet {
                Packet::Connect(c) => {
                    protocol = c.protocol;
                    Some(Packet::ConnAck(ConnAck::default()))
                }
                Packet::Subscribe(s) => Some(Packet::SubAck(SubAck {
                    packet_id: s.packet_id,
                    properties: Default::default(),
                    reason_codes: s
                        .filters
                        .iter()
                        .map(|f| match f.options.qos {
                            QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                            QoS::AtLeastOnce => ReasonCode::GRANTED_QOS_1,
                            QoS::ExactlyOnce => ReasonCode::GRANTED_QOS_2,
                        })
                        .collect(),
                })),
                Packet::Publish(p) => {
                    count += 1;
                    match (p.qos, p.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => {
                            Some(Packet::PubAck(pigeon_client::proto::codec::Ack::new(id)))
                        }
                        (QoS::ExactlyOnce, Some(id)) => {
                            Some(Packet::PubRec(pigeon_client::proto::codec::Ack::new(id)))
                        }
                        _ => None,
                    }
                }
                Packet::PubRel(a) => Some(Packet::PubComp(pigeon_client::proto::codec::Ack::new(
                    a.packet_id,
                ))),
                Packet::PingReq => Some(Packet::PingResp),
                Packet::Disconnect(_) => return Ok(()),
                _ => None,
            };
            if let Some(reply) = reply {
                let _ = reply.encode(protocol, &mut out);
            }
        }
        received.fetch_add(count, Ordering::Relaxed);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
    }
}

/// The whole length of a QoS 0 PUBLISH at the front of `buf`, if that is
/// what is there and its fixed header is complete.
fn qos0_publish_len(buf: &[u8]) -> Option<usize> {
    let first = *buf.first()?;
    if first >> 4 != 3 || first & 0x06 != 0 {
        return None;
    }
    let mut remaining = 0usize;
    for (i, byte) in buf.iter().skip(1).take(4).enumerate() {
        remaining |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(1 + i + 1 + remaining);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscriber_counts_duplicates_and_what_it_saw_per_stream() {
        let mut seen = Seen::new();
        for seq in [1, 2, 2, 3, 5] {
            seen.record(0, &payload(HEADER, 7, seq), unix_nanos());
        }
        assert_eq!(seen.duplicates, 1);
        assert_eq!(seen.streams[&(7, 0)], (5, 4));
        assert_eq!(seen.latency.len(), 5);
    }

    #[test]
    fn the_sink_skips_qos0_publishes_by_their_fixed_header() {
        let mut b = BytesMut::new();
        let topic = TopicName::try_from("a/b").expect("topic");
        Packet::Publish(Publish::new(topic, vec![0u8; 300]))
            .encode(Protocol::V3_1_1, &mut b)
            .expect("encodes");
        assert_eq!(qos0_publish_len(&b), Some(b.len()));
        assert_eq!(qos0_publish_len(&b[..1]), None, "incomplete header");
        assert_eq!(qos0_publish_len(&[0x32, 5]), None, "QoS 1");
        assert_eq!(qos0_publish_len(&[0x10, 5]), None, "CONNECT");
    }

    #[test]
    fn numbers_are_grouped_for_reading() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(time(12.0), "12 µs");
        assert_eq!(time(1500.0), "1.50 ms");
    }
}
