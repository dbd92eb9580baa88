//! What the client tests share: a Pigeon broker in-process, Debian's
//! mosquitto as a child process, and waiting for events.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use pigeon_broker::{Broker, Config, Durability};
use pigeon_client::{Event, Events, Options, Protocol};

pub const WAIT: Duration = Duration::from_secs(5);

pub async fn broker() -> Broker {
    let config = Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        sys_interval: 0,
        durability: Durability::Memory,
        ..Config::default()
    };
    Broker::start(config).await.unwrap()
}

pub fn options(broker: &Broker, id: &str, protocol: Protocol) -> Options {
    let addr = broker.local_addr();
    Options::new(addr.ip().to_string(), addr.port())
        .client_id(id)
        .protocol(protocol)
}

/// The next event about the connection or a message (completions of
/// requests, which the tests await directly, are skipped), in time.
pub async fn next(events: &mut Events) -> Event {
    loop {
        let event = tokio::time::timeout(WAIT, events.recv())
            .await
            .unwrap()
            .unwrap();
        let completion = matches!(
            event,
            Event::Published { .. } | Event::Subscribed { .. } | Event::Unsubscribed { .. }
        );
        if !completion {
            return event;
        }
    }
}

pub async fn connected(events: &mut Events) -> bool {
    match next(events).await {
        Event::Connected {
            session_present, ..
        } => session_present,
        other => panic!("expected Connected, got {other:?}"),
    }
}

pub async fn message(events: &mut Events) -> pigeon_client::Message {
    match next(events).await {
        Event::Message(m) => *m,
        other => panic!("expected a message, got {other:?}"),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's mosquitto on a free loopback port, stopped by PID on drop.
pub struct Mosquitto {
    pub port: u16,
    child: std::process::Child,
    _conf: tempfile::NamedTempFile,
}

impl Mosquitto {
    pub fn start() -> Option<Mosquitto> {
        Mosquitto::start_with("")
    }

    /// With `extra` lines in its listener's configuration (TLS files, …).
    pub fn start_with(extra: &str) -> Option<Mosquitto> {
        if !std::path::Path::new("/usr/sbin/mosquitto").exists() {
            return None;
        }
        let port = free_port();
        let conf = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            conf.path(),
            format!("listener {port} 127.0.0.1\n{extra}allow_anonymous true\n"),
        )
        .unwrap();
        let child = std::process::Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(conf.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Mosquitto {
            port,
            child,
            _conf: conf,
        })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
