//! `pigeon broker` with a password file in mosquitto's format: files made
//! by Debian's mosquitto_passwd (both hashes it writes) and by `pigeon
//! passwd` (argon2id) let their users in; a wrong password, an unknown
//! user and an anonymous client get the CONNACK codes the specification
//! gives, seen through mosquitto_pub's and pigeon pub's exit codes; the
//! broker logs why; a broken file stops it at start-up with the line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

mod common;
use common::*;

fn broker_with_passwords(dir: &Path, passwords: &Path) -> Service {
    let port = free_port();
    let config = dir.join("pigeon.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndurability = \"memory\"\ndata_dir = \"{}\"\nallow_anonymous = false\npassword_file = \"{}\"\n",
            dir.join("data").display(),
            passwords.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    let child = std::process::Command::new(PIGEON)
        .args(["broker", "-c", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_listening(port);
    Service {
        child,
        port,
        dir: tempfile::tempdir().unwrap(),
    }
}

#[test]
fn mosquitto_and_pigeon_password_files_admit_their_users_only() {
    if !have("mosquitto_passwd") || !have("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    let f = file.to_str().unwrap();
    for args in [
        vec!["-c", "-b", "-H", "sha512-pbkdf2", f, "alice", "alice-pw"],
        vec!["-b", "-H", "sha512", f, "bob", "bob-pw"],
    ] {
        let out = run("/usr/bin/mosquitto_passwd", &args, b"");
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    let out = pigeon(&["passwd", "-b", f, "carol", "carol-pw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let broker = broker_with_passwords(dir.path(), &file);
    let port = broker.port.to_string();
    for version in ["311", "5"] {
        let v5 = version == "5";
        for (user, password, expected) in [
            (Some("alice"), "alice-pw", 0),
            (Some("bob"), "bob-pw", 0),
            (Some("carol"), "carol-pw", 0),
            // 0x86 Bad User Name or Password (5.0), return code 4 (3.1.1).
            (Some("alice"), "wrong", if v5 { 134 } else { 4 }),
            (Some("mallory"), "carol-pw", if v5 { 134 } else { 4 }),
            // No user name and anonymous access off: Not authorized.
            (None, "", if v5 { 135 } else { 5 }),
        ] {
            let mut args = vec![
                "-p", &port, "-V", version, "-t", "auth/t", "-m", "x", "-q", "1",
            ];
            if let Some(user) = user {
                args.extend(["-u", user, "-P", password]);
            }
            let theirs = run("/usr/bin/mosquitto_pub", &args, b"");
            assert_eq!(
                code(&theirs),
                expected,
                "mosquitto_pub -V {version} {user:?}: {}",
                stderr(&theirs)
            );
            let ours = run(PIGEON, &[&["pub"][..], &args].concat(), b"");
            assert_eq!(code(&ours), expected, "pigeon pub -V {version} {user:?}");
        }
    }
    drop(broker);
    let log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap();
    assert!(
        log.contains("refused: bad user name or password") && log.contains("user=\"mallory\""),
        "the broker says why: {log}"
    );
}

#[test]
fn a_broken_password_file_stops_the_broker_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    std::fs::write(&file, "alice:$7$101$not-a-hash\n").unwrap();
    let config = dir.path().join("pigeon.toml");
    std::fs::write(
        &config,
        format!(
            "durability = \"memory\"\ndata_dir = \"{}\"\npassword_file = \"{}\"\n",
            dir.path().join("data").display(),
            file.display()
        ),
    )
    .unwrap();
    let out = pigeon(&["broker", "-c", config.to_str().unwrap(), "-p", "0"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(
        err.contains("password_file") && err.contains("line 1"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_wrong_password_is_answered_late() {
    // limits.auth_failure_delay_ms (500 by default) holds the CONNACK of a
    // refused client; a fast hash ($6$) shows the wait is the delay's.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwords");
    let f = file.to_str().unwrap();
    let out = pigeon(&["passwd", "-c", "-b", "-H", "sha512", f, "bob", "bob-pw"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let broker = broker_with_passwords(dir.path(), &file);
    let port = broker.port.to_string();
    let started = std::time::Instant::now();
    let out = pigeon(&[
        "pub", "-p", &port, "-u", "bob", "-P", "wrong", "-t", "t", "-m", "x",
    ]);
    let waited = started.elapsed();
    assert_eq!(code(&out), 4);
    assert!(
        waited >= std::time::Duration::from_millis(480),
        "refused after {waited:?}"
    );
}
