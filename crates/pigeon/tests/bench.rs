//! `pigeon bench` does what it reports: against a real broker its counts
//! add up (nothing lost or doubled at QoS 1 and 2 when the broker keeps
//! up), against `bench sink` the generator runs alone, and its errors are
//! one line. Rates are not asserted here: they are measured by
//! `scripts/bench-generator` and recorded in docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::*;

fn bench(port: u16, args: &[&str]) -> Output {
    let port = port.to_string();
    let mut all = vec!["bench"];
    all.extend(args);
    all.extend(["-p", &port, "--json"]);
    let out = Command::new(PIGEON).args(&all).output().unwrap();
    assert!(
        out.status.success(),
        "{all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn n(v: &serde_json::Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

#[test]
fn scenarios_account_for_every_message_when_the_broker_keeps_up() {
    let broker = pigeon_broker();
    for (scenario, qos, clients, copies) in [
        ("pairs", "1", "3", 1),
        ("fanin", "2", "3", 1),
        ("fanout", "1", "3", 3),
        ("fanout", "0", "2", 2),
    ] {
        let out = bench(
            broker.port,
            &[
                "run",
                "--scenario",
                scenario,
                "-q",
                qos,
                "-c",
                clients,
                "-r",
                "500",
                "-d",
                "1",
            ],
        );
        let r = report(&out);
        let sent = n(&r, "sent");
        assert!(sent > 100, "{scenario}: only {sent} sent");
        assert_eq!(n(&r, "expected"), sent * copies, "{scenario} {r}");
        assert_eq!(n(&r, "received"), n(&r, "expected"), "{scenario} {r}");
        assert_eq!(
            (n(&r, "lost"), n(&r, "duplicated")),
            (0, 0),
            "{scenario} {r}"
        );
        assert_eq!(n(&r["latency"], "samples"), n(&r, "received"));
        assert!(r["latency"]["p50_us"].as_f64().unwrap() > 0.0);
        assert!(
            out.stderr.is_empty(),
            "no progress line when not on a terminal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Connections held, with their connect times.
    let r = report(&bench(
        broker.port,
        &["conn", "-c", "40", "--connect-rate", "400", "-d", "0.5"],
    ));
    assert_eq!((n(&r, "connected"), n(&r, "failed")), (40, 0), "{r}");
    assert_eq!(n(&r["latency"], "samples"), 40);
    // A subscriber alone sees what a separate publisher process sends.
    let port = broker.port.to_string();
    let sub = Command::new(PIGEON)
        .args([
            "bench", "sub", "-p", &port, "-t", "solo/%i", "-c", "1", "-q", "1", "-d", "3", "--json",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let r = report(&bench(
        broker.port,
        &["pub", "-t", "solo/%i", "-q", "1", "-n", "250", "-d", "2"],
    ));
    assert_eq!((n(&r, "sent"), n(&r, "completed")), (250, 250), "{r}");
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success());
    let r = report(&out);
    assert_eq!(n(&r, "received"), 250, "{r}");
}

#[test]
fn the_generator_alone_against_the_sink() {
    let sink = pigeon_server(&["bench", "sink"]);
    for qos in ["0", "1", "2"] {
        let r = report(&bench(
            sink.port,
            &["pub", "-q", qos, "-c", "2", "-n", "5000", "-d", "5"],
        ));
        assert_eq!(n(&r, "sent"), 10_000, "QoS {qos}: {r}");
        assert_eq!(n(&r, "completed"), 10_000, "QoS {qos}: {r}");
    }
}

#[test]
fn bad_arguments_and_no_broker_are_one_line_and_exit_1() {
    let closed = free_port().to_string();
    for args in [
        vec!["bench", "pub", "-s", "5"],
        vec!["bench", "pub", "-c", "0"],
        vec!["bench", "pub", "-t", "a/#"],
        vec!["bench", "pub", "-p", closed.as_str(), "-q", "1", "-d", "1"],
        vec!["bench", "conn", "-p", closed.as_str(), "-d", "0.2"],
    ] {
        let out = Command::new(PIGEON).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("pigeon bench: "), "{args:?}: {err}");
    }
}
