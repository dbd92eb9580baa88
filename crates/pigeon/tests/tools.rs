//! `pigeon pub`, `pigeon sub` and `pigeon rr` as a mosquitto user meets
//! them: the same flags, byte-for-byte the same output as Debian's
//! mosquitto_sub 2.0.11 on the same stream, and the same exit codes as
//! mosquitto_pub against the same refusing broker.
//!
//! Brokers: `pigeon broker` (this build) and Debian's mosquitto, each
//! started on a free loopback port and stopped by PID. Tests that need a
//! mosquitto program skip with a message when it is missing (CI installs
//! them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;
use common::*;

/// The stream the golden tests print: v5 properties, binary, empty and
/// non-ASCII payloads. (Retained messages are printed separately: a
/// retained one in a queued stream races with the copy mosquitto_sub's
/// SUBSCRIBE at reconnection brings.)
fn publish_golden_stream(port: u16, dir: &Path) {
    let binary: Vec<u8> = (0u8..=255).collect();
    let bin = dir.join("binary.bin");
    std::fs::write(&bin, binary).unwrap();
    let port = port.to_string();
    let base = ["-p", port.as_str(), "-V", "5"];
    let messages: Vec<Vec<&str>> = vec![
        vec!["-t", "g/plain", "-m", "hello world", "-q", "1"],
        vec!["-t", "g/empty", "-n", "-q", "1"],
        // QoS 1: mosquitto_sub hands a QoS 2 message to its application
        // at PUBREL, after later QoS 1 ones; pigeon at PUBLISH. Only the
        // last message is QoS 2, so both print in the same order.
        vec!["-t", "g/bin", "-f", bin.to_str().unwrap(), "-q", "1"],
        vec![
            "-t",
            "g/props",
            "-m",
            "{\"t\":21.5,\"ok\":[true,null]}",
            "-q",
            "1",
            "-D",
            "publish",
            "content-type",
            "application/json",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "user-property",
            "k",
            "w",
            "-D",
            "publish",
            "response-topic",
            "r/t",
            "-D",
            "publish",
            "correlation-data",
            "abc",
            "-D",
            "publish",
            "message-expiry-interval",
            "3000",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
        vec![
            "-t",
            "g/utf8",
            "-m",
            "h\u{e9}llo \"quoted\" \\ back\ttab",
            "-q",
            "2",
        ],
    ];
    for message in messages {
        let args: Vec<&str> = base.iter().copied().chain(message).collect();
        let out = run("/usr/bin/mosquitto_pub", &args, b"");
        assert_eq!(code(&out), 0, "mosquitto_pub {args:?}: {}", stderr(&out));
    }
}

const GOLDEN_COUNT: &str = "5";

/// Time fields that legitimately differ between two runs: the `%j` time
/// stamp and the remaining message expiry (also in `--pretty` form).
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let tst = rest.find("\"tst\":");
        let expiry = rest.find("\"message-expiry-interval\":");
        let (at, key_len, quoted) = match (tst, expiry) {
            (Some(t), Some(e)) if e < t => (e, 26, false),
            (Some(t), _) => (t, 6, true),
            (None, Some(e)) => (e, 26, false),
            (None, None) => break,
        };
        out.push_str(&rest[..at + key_len]);
        rest = &rest[at + key_len..];
        let gap = rest.len() - rest.trim_start_matches('\t').len();
        out.push_str(&rest[..gap]);
        rest = &rest[gap..];
        let end = match quoted {
            true => rest[1..].find('"').map_or(rest.len(), |i| i + 2),
            false => rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len(),
        };
        out.push_str("NORMALISED");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn sub_prints_byte_for_byte_what_mosquitto_sub_prints() {
    if !have("mosquitto_sub") || !have("mosquitto_pub") {
        return;
    }
    let broker = pigeon_broker();
    let port = broker.port.to_string();
    let formats: Vec<Vec<&str>> = vec![
        vec![],
        vec!["-v"],
        vec!["-N"],
        vec!["-v", "-N"],
        vec!["-F", "%t %p"],
        vec!["-F", "%j"],
        vec!["-F", "%j", "--pretty"],
        vec!["-F", "%x|%X|%l|%q|%r|%m"],
        vec!["-F", "%C|%D|%F|%P|%R|%S|%A"],
        vec!["-F", "[%10t] [%-10t] [%010l] [%5.3t] [%-5l]"],
        vec!["-F", "%% \\t\\\\ \\a\\e\\v\\r\\0 end\\n"],
        vec!["-F", "@Y-@m-@d @@ %t"],
        vec!["-F", "%J"],
    ];
    let keep = [
        "-p", &port, "-V", "5", "-t", "k/kept", "-m", "kept", "-r", "-q", "1",
    ];
    assert_eq!(code(&run("/usr/bin/mosquitto_pub", &keep, b"")), 0);
    for (n, format) in formats.iter().enumerate() {
        // Each tool gets its own persistent session, made before the
        // stream is published, so both print the same queued messages.
        let ids = [format!("golden-m{n}"), format!("golden-p{n}")];
        for (tool, id) in [("/usr/bin/mosquitto_sub", &ids[0]), (PIGEON, &ids[1])] {
            let mut args = vec![];
            if tool == PIGEON {
                args.push("sub");
            }
            args.extend([
                "-p", &port, "-V", "5", "-c", "-i", id, "-q", "2", "-t", "g/#", "-E",
            ]);
            let out = run(tool, &args, b"");
            assert_eq!(code(&out), 0, "{tool} -E: {}", stderr(&out));
        }
        publish_golden_stream(broker.port, broker.dir.path());
        let mut outputs = Vec::new();
        for (tool, id) in [("/usr/bin/mosquitto_sub", &ids[0]), (PIGEON, &ids[1])] {
            let mut args = vec![];
            if tool == PIGEON {
                args.push("sub");
            }
            args.extend([
                "-p", &port, "-V", "5", "-c", "-i", id, "-q", "2", "-t", "g/#",
            ]);
            args.extend(["-C", GOLDEN_COUNT, "-W", "10"]);
            args.extend(format.iter().copied());
            let out = run(tool, &args, b"");
            assert_eq!(code(&out), 0, "{tool} {format:?}: {}", stderr(&out));
            outputs.push(out.stdout);
        }
        let mosquitto = normalise(&String::from_utf8_lossy(&outputs[0]));
        let ours = normalise(&String::from_utf8_lossy(&outputs[1]));
        assert!(
            !mosquitto.is_empty(),
            "{format:?}: mosquitto_sub printed nothing"
        );
        if ours != mosquitto {
            let at = ours
                .bytes()
                .zip(mosquitto.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(ours.len().min(mosquitto.len()));
            let from = at.saturating_sub(60);
            panic!(
                "pigeon sub {format:?} differs from mosquitto_sub at byte {at}:\n  pigeon:    {:?}\n  mosquitto: {:?}",
                String::from_utf8_lossy(&ours.as_bytes()[from..(at + 60).min(ours.len())]),
                String::from_utf8_lossy(&mosquitto.as_bytes()[from..(at + 60).min(mosquitto.len())]),
            );
        }
        let timed = format.iter().any(|f| f.contains("%j") || f.contains("%J"));
        if !timed {
            assert_eq!(outputs[1], outputs[0], "{format:?}: bytes differ");
        }
        // A retained message, to a fresh subscription of each.
        let mut retained = Vec::new();
        for tool in ["/usr/bin/mosquitto_sub", PIGEON] {
            let mut args = vec![];
            if tool == PIGEON {
                args.push("sub");
            }
            args.extend(["-p", &port, "-V", "5", "-t", "k/#", "-C", "1", "-W", "10"]);
            args.extend(format.iter().copied());
            let out = run(tool, &args, b"");
            assert_eq!(code(&out), 0, "{tool} {format:?}: {}", stderr(&out));
            retained.push(normalise(&String::from_utf8_lossy(&out.stdout)));
        }
        assert_eq!(retained[1], retained[0], "{format:?}: a retained message");
    }
}

#[test]
fn pub_flags_reach_the_subscriber() {
    let broker = pigeon_broker();
    let port = broker.port.to_string();
    let p = port.as_str();
    let sub = |args: &[&str]| {
        let mut all = vec!["sub", "-p", p, "-W", "10"];
        all.extend(args);
        background(PIGEON, &all)
    };
    let settle = || std::thread::sleep(Duration::from_millis(300));

    // -m, -q, -i, -I, -u/-P, -k, -V, -r, --repeat, --repeat-delay.
    let watcher = sub(&["-t", "f/#", "-v", "-C", "5", "-V", "mqttv311"]);
    settle();
    for args in [
        vec![
            "-t", "f/m", "-m", "one", "-q", "1", "-i", "pub-one", "-k", "5",
        ],
        vec![
            "-t", "f/i", "-m", "two", "-q", "2", "-I", "pfx-", "-V", "31",
        ],
        vec![
            "-t", "f/u", "-m", "three", "-u", "user", "-P", "pw", "-V", "5",
        ],
        vec![
            "-t",
            "f/r",
            "-m",
            "twice",
            "--repeat",
            "2",
            "--repeat-delay",
            "0.05",
        ],
    ] {
        let mut all = vec!["pub", "-p", p];
        all.extend(args);
        let out = pigeon(&all);
        assert_eq!(code(&out), 0, "{all:?}: {}", stderr(&out));
    }
    let out = finish(watcher);
    assert_eq!(
        stdout(&out),
        "f/m one\nf/i two\nf/u three\nf/r twice\nf/r twice\n"
    );

    // -f, -s, -l, -n with -r (clears), -L, -x/-c, -D.
    let file = broker.dir.path().join("payload.txt");
    std::fs::write(&file, b"from a file\n").unwrap();
    let watcher = sub(&["-t", "s/#", "-F", "%t=%p|%C", "-C", "5", "-V", "5"]);
    settle();
    let out = pigeon(&["pub", "-p", p, "-t", "s/f", "-f", file.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(
        PIGEON,
        &["pub", "-p", p, "-t", "s/s", "-s"],
        b"all of\nstdin",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(
        PIGEON,
        &["pub", "-p", p, "-t", "s/l", "-l", "-q", "1"],
        b"line 1\nline 2\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let url = format!("mqtt://127.0.0.1:{p}/s/url");
    let out = pigeon(&[
        "pub",
        "-L",
        &url,
        "-m",
        "via url",
        "-c",
        "-i",
        "persistent-pub",
        "-x",
        "60",
        "-D",
        "publish",
        "content-type",
        "text/plain",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = finish(watcher);
    let printed = stdout(&out);
    assert_eq!(
        printed,
        "s/f=from a file\n|\ns/s=all of\nstdin|\ns/l=line 1|\ns/l=line 2|\ns/url=via url|text/plain\n",
        "raw: {printed:?}"
    );

    // -r keeps the message for later subscribers; -n -r clears it.
    let out = pigeon(&["pub", "-p", p, "-t", "keep", "-m", "stays", "-r"]);
    assert_eq!(code(&out), 0);
    let out = pigeon(&["sub", "-p", p, "-t", "keep", "-C", "1", "-W", "5"]);
    assert_eq!(stdout(&out), "stays\n");
    let out = pigeon(&["pub", "-p", p, "-t", "keep", "-n", "-r"]);
    assert_eq!(code(&out), 0);
    let out = pigeon(&["sub", "-p", p, "-t", "keep", "-C", "1", "-W", "1"]);
    assert_eq!(code(&out), 27, "no retained message is left");

    // -d prints the packets, --quiet hides runtime errors.
    let out = pigeon(&[
        "pub", "-p", p, "-t", "d", "-m", "x", "-q", "1", "-d", "-i", "dbg",
    ]);
    let text = stdout(&out);
    for line in [
        "Client dbg sending CONNECT\n",
        "Client dbg received CONNACK (0)\n",
        "Client dbg sending PUBLISH (d0, q1, r0, m1, 'd', ... (1 bytes))\n",
        "Client dbg received PUBACK (Mid: 1, RC:0)\n",
        "Client dbg sending DISCONNECT\n",
    ] {
        assert!(text.contains(line), "no {line:?} in {text}");
    }
    let closed = free_port().to_string();
    let out = pigeon(&["pub", "-p", &closed, "-t", "t", "-m", "x", "--quiet"]);
    assert_eq!((code(&out), stderr(&out).as_str()), (1, ""));
}

#[test]
fn a_will_set_by_a_tool_is_published_when_it_dies() {
    let broker = pigeon_broker();
    let p = broker.port.to_string();
    let watcher = background(
        PIGEON,
        &[
            "sub", "-p", &p, "-t", "wills/#", "-v", "-C", "1", "-W", "10",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut doomed = background(
        PIGEON,
        &[
            "sub",
            "-p",
            &p,
            "-t",
            "nothing",
            "--will-topic",
            "wills/doomed",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
            "--will-retain",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    doomed.kill().unwrap(); // SIGKILL: no DISCONNECT, so the will goes out
    doomed.wait().unwrap();
    let out = finish(watcher);
    assert_eq!(stdout(&out), "wills/doomed gone\n");
    // Retained, as asked.
    let out = pigeon(&[
        "sub",
        "-p",
        &p,
        "-t",
        "wills/doomed",
        "-C",
        "1",
        "-W",
        "5",
        "-F",
        "%r %p",
    ]);
    assert_eq!(stdout(&out), "1 gone\n");
    let out = pigeon(&["pub", "-p", &p, "-t", "x", "-m", "y", "--will-payload", "p"]);
    assert_eq!(code(&out), 1, "a will payload without a topic is refused");
}

#[test]
fn sub_flags_count_wait_filter_and_retained() {
    let broker = pigeon_broker();
    let p = broker.port.to_string();
    let publish = |topic: &str, payload: &str, retain: bool| {
        let mut args = vec!["pub", "-p", &p, "-t", topic, "-m", payload, "-q", "1"];
        if retain {
            args.push("-r");
        }
        assert_eq!(code(&pigeon(&args)), 0);
    };
    publish("r/one", "old 1", true);
    publish("r/two", "old 2", true);

    // --retained-only prints the retained ones and exits at the first live one.
    let watcher = background(
        PIGEON,
        &["sub", "-p", &p, "-t", "r/#", "--retained-only", "-W", "10"],
    );
    std::thread::sleep(Duration::from_millis(400));
    publish("r/live", "live", false);
    let out = finish(watcher);
    let mut lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    lines.sort_unstable(); // the broker's order of retained messages
    assert_eq!((code(&out), lines), (0, vec!["old 1", "old 2"]));

    // -R skips them; -T filters a topic out; -C counts what is printed.
    let watcher = background(
        PIGEON,
        &[
            "sub", "-p", &p, "-t", "r/#", "-R", "-T", "r/skip", "-C", "2", "-v", "-W", "10",
        ],
    );
    std::thread::sleep(Duration::from_millis(400));
    publish("r/skip", "filtered", false);
    publish("r/a", "first", false);
    publish("r/b", "second", false);
    publish("r/c", "not printed", false);
    let out = finish(watcher);
    assert_eq!(stdout(&out), "r/a first\nr/b second\n");

    // -N: no newlines.
    let watcher = background(
        PIGEON,
        &["sub", "-p", &p, "-t", "n/#", "-N", "-C", "2", "-W", "10"],
    );
    std::thread::sleep(Duration::from_millis(400));
    publish("n/1", "ab", false);
    publish("n/2", "cd", false);
    assert_eq!(stdout(&finish(watcher)), "abcd");

    // --remove-retained clears what it sees; with --retained-only it exits
    // at the first live message, its own deletion coming back. (mosquitto
    // 2.0.11 hangs there until -W runs out, then exits 27.)
    let out = pigeon(&[
        "sub",
        "-p",
        &p,
        "-t",
        "r/#",
        "--remove-retained",
        "--retained-only",
        "-W",
        "5",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().count(),
        2,
        "both printed: {}",
        stdout(&out)
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = pigeon(&["sub", "-p", &p, "-t", "r/#", "-C", "1", "-W", "1"]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (27, ""),
        "retained messages cleared"
    );
    assert_eq!(stderr(&out), "Timed out\n");

    // -E exits once subscribed; -U unsubscribes a persistent session.
    let out = pigeon(&[
        "sub", "-p", &p, "-t", "e/#", "-c", "-i", "keeper", "-q", "1", "-E",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    publish("e/queued", "for keeper", false);
    let out = pigeon(&[
        "sub", "-p", &p, "-t", "e/#", "-c", "-i", "keeper", "-q", "1", "-C", "1", "-W", "5",
    ]);
    assert_eq!(stdout(&out), "for keeper\n");
    let out = pigeon(&["sub", "-p", &p, "-U", "e/#", "-c", "-i", "keeper", "-E"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    publish("e/after", "not for keeper", false);
    let out = pigeon(&[
        "sub", "-p", &p, "-c", "-i", "keeper", "-U", "nothing", "-C", "1", "-W", "1",
    ]);
    assert_eq!((code(&out), stdout(&out).as_str()), (27, ""));

    // Colour only when asked or on a terminal (never here, piped).
    publish("c/t", "coloured", true);
    let out = pigeon(&[
        "sub", "-p", &p, "-t", "c/t", "-v", "-C", "1", "-W", "5", "--color", "always",
    ]);
    assert_eq!(stdout(&out), "\x1b[32mc/t\x1b[0m coloured\n");
    let out = pigeon(&["sub", "-p", &p, "-t", "c/t", "-v", "-C", "1", "-W", "5"]);
    assert_eq!(stdout(&out), "c/t coloured\n");
}

#[test]
fn rr_prints_the_response_or_times_out() {
    let broker = pigeon_broker();
    let p = broker.port.to_string();
    // A responder: answers each request on its Response Topic.
    let responder = std::thread::spawn({
        let p = p.clone();
        move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                use pigeon_client::{AsyncClient, Event, Options, Protocol, QoS};
                let options = Options::new("127.0.0.1", p.parse().unwrap())
                    .protocol(Protocol::V5)
                    .client_id("responder");
                let (client, mut events) = AsyncClient::new(options);
                client
                    .subscribe("service/echo", QoS::AtLeastOnce)
                    .await
                    .unwrap();
                while let Some(event) = events.recv().await {
                    if let Event::Message(m) = event {
                        let reply = format!("echo: {}", String::from_utf8_lossy(&m.payload));
                        let to = m.properties.response_topic.clone().unwrap();
                        client
                            .publish(to.as_str(), QoS::AtLeastOnce, false, reply)
                            .await
                            .unwrap();
                        return;
                    }
                }
            });
        }
    });
    std::thread::sleep(Duration::from_millis(400));
    let out = pigeon(&[
        "rr",
        "-p",
        &p,
        "-t",
        "service/echo",
        "-e",
        "replies/me",
        "-m",
        "ping",
        "-v",
        "-W",
        "10",
    ]);
    assert_eq!(
        (code(&out), stdout(&out).as_str()),
        (0, "replies/me echo: ping\n"),
        "{}",
        stderr(&out)
    );
    responder.join().unwrap();
    let out = pigeon(&[
        "rr",
        "-p",
        &p,
        "-t",
        "service/none",
        "-e",
        "replies/none",
        "-m",
        "ping",
        "-W",
        "1",
    ]);
    assert_eq!((code(&out), stderr(&out).as_str()), (27, "Timed out\n"));
    let out = pigeon(&["rr", "-p", &p, "-t", "a", "-e", "b", "-m", "x", "-V", "311"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("needs MQTT v5"), "{}", stderr(&out));
}

#[test]
fn exit_codes_match_mosquitto_pub_against_a_refusing_broker() {
    if !have("mosquitto") || !have("mosquitto_pub") || !have("mosquitto_passwd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwd");
    let made = run(
        "/usr/bin/mosquitto_passwd",
        &["-c", "-b", passwords.to_str().unwrap(), "alice", "right"],
        b"",
    );
    assert_eq!(code(&made), 0, "{}", stderr(&made));
    let broker = mosquitto_broker(&format!(
        "allow_anonymous false\npassword_file {}\n",
        passwords.display()
    ));
    let p = broker.port.to_string();
    for version in ["311", "5"] {
        for (user, password) in [("alice", "wrong"), ("nobody", "x")] {
            let args = [
                "-p", &p, "-t", "t", "-m", "x", "-V", version, "-u", user, "-P", password,
            ];
            let theirs = run("/usr/bin/mosquitto_pub", &args, b"");
            let ours = run(PIGEON, &[&["pub"][..], &args].concat(), b"");
            assert_eq!(
                code(&ours),
                code(&theirs),
                "-V {version}: {}",
                stderr(&ours)
            );
            assert_ne!(code(&ours), 0);
            assert!(
                stderr(&ours).starts_with("Connection error: "),
                "{}",
                stderr(&ours)
            );
            assert!(
                stderr(&ours).contains(&format!("localhost:{p}")),
                "{}",
                stderr(&ours)
            );
        }
        let args = [
            "-p", &p, "-t", "t", "-m", "x", "-V", version, "-u", "alice", "-P", "right",
        ];
        assert_eq!(code(&run(PIGEON, &[&["pub"][..], &args].concat(), b"")), 0);
    }
    // Nothing listening: 1, naming the address and what to do.
    let closed = free_port().to_string();
    let out = pigeon(&["sub", "-p", &closed, "-t", "t"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("is a broker running there?"),
        "{}",
        stderr(&out)
    );
    // Bad arguments: 1, one line saying what is wrong.
    for args in [
        vec!["pub", "-t", "t"],
        vec!["pub", "-t", "a/+", "-m", "x"],
        vec!["pub", "-t", "t", "-m", "x", "-q", "3"],
        vec!["sub"],
        vec!["sub", "-t", "t", "-c"],
        vec![
            "pub", "-t", "t", "-m", "x", "-D", "publish", "nonsense", "1",
        ],
        vec![
            "pub",
            "-t",
            "t",
            "-m",
            "x",
            "-V",
            "311",
            "-D",
            "publish",
            "content-type",
            "a",
        ],
    ] {
        let out = pigeon(&args);
        assert_eq!(code(&out), 1, "{args:?}");
        assert!(!stderr(&out).is_empty(), "{args:?} said nothing");
    }
}

#[test]
fn tls_flags_against_mosquitto() {
    if !have("mosquitto") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let pki = Pki::in_dir(dir.path());
    let broker = mosquitto_broker(&format!(
        "allow_anonymous true\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
        pki.ca.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    ));
    let p = broker.port.to_string();
    let ca = pki.ca.to_str().unwrap();
    let cert = pki.client_cert.to_str().unwrap();
    let key = pki.client_key.to_str().unwrap();
    let tls = ["--cafile", ca, "--cert", cert, "--key", key];
    let watcher = background(
        PIGEON,
        &[
            &[
                "sub",
                "-h",
                "localhost",
                "-p",
                &p,
                "-t",
                "tls/#",
                "-v",
                "-C",
                "2",
                "-W",
                "10",
            ][..],
            &tls,
        ]
        .concat(),
    );
    std::thread::sleep(Duration::from_millis(400));
    let out = pigeon(
        &[
            &[
                "pub",
                "-h",
                "localhost",
                "-p",
                &p,
                "-t",
                "tls/a",
                "-m",
                "secret",
                "--tls-version",
                "tlsv1.2",
            ][..],
            &tls,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // By address the name does not match; --insecure lets that through.
    let out = pigeon(
        &[
            &[
                "pub",
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-t",
                "tls/b",
                "-m",
                "insecure",
                "--insecure",
            ][..],
            &tls,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = finish(watcher);
    assert_eq!(stdout(&out), "tls/a secret\ntls/b insecure\n");
    let out = pigeon(
        &[
            &["pub", "-h", "127.0.0.1", "-p", &p, "-t", "t", "-m", "x"][..],
            &tls,
        ]
        .concat(),
    );
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("not valid for name"),
        "{}",
        stderr(&out)
    );
    let capath = dir.path().join("cas");
    std::fs::create_dir(&capath).unwrap();
    std::fs::copy(&pki.ca, capath.join("ca.pem")).unwrap();
    let out = pigeon(&[
        "pub",
        "-h",
        "localhost",
        "-p",
        &p,
        "-t",
        "t",
        "-m",
        "x",
        "--capath",
        capath.to_str().unwrap(),
        "--cert",
        cert,
        "--key",
        key,
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

/// The files `make_pki` writes.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    fn in_dir(dir: &Path) -> Pki {
        Pki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
        }
    }
}
