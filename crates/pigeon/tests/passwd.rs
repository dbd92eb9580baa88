//! `pigeon passwd` as a mosquitto_passwd user meets it: files made by
//! Debian's mosquitto_passwd 2.0.11 edited without harm, files made by
//! `pigeon passwd -H sha512-pbkdf2` accepted by Debian's mosquitto broker
//! 2.0.11, argon2id files (which 2.0.11 cannot read) checked through the
//! broker crate's `PasswordFile`, and every mistake one line and exit 1.
//!
//! Tests that need a mosquitto program skip with a message when it is
//! missing (CI installs them). The broker runs on a free loopback port and
//! is stopped by its PID.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use pigeon_broker::auth::password::PasswordFile;

mod common;
use common::*;
use pigeon_broker::auth::scram::ScramSha256;

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";

fn passwd(args: &[&str], stdin: &[u8]) -> Output {
    run(PIGEON, &[&["passwd"][..], args].concat(), stdin)
}

/// `pigeon passwd ARGS` succeeds, saying nothing but perhaps a note (that
/// the file is readable by every user, as mosquitto_passwd leaves it).
fn ok(args: &[&str]) {
    let out = passwd(args, b"");
    let said = stderr(&out);
    assert_eq!(code(&out), 0, "{args:?}: {said}");
    assert!(
        said.lines().all(|l| l.starts_with("pigeon: note: ")),
        "{args:?}: {said}"
    );
}

/// `mosquitto_passwd ARGS` succeeds.
fn mosquitto_passwd(args: &[&str]) {
    let out = run(MOSQUITTO_PASSWD, args, b"");
    assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Debian's mosquitto that admits only the users of a password file.
struct Mosquitto(Service);

impl Mosquitto {
    /// A broker that admits only the users of `password_file`.
    fn start(password_file: &Path) -> Mosquitto {
        // Started as root, mosquitto drops to user `mosquitto` before it
        // reads the password file, which `pigeon passwd` made 0600 for
        // root; `user root` keeps it as the file's owner, as an
        // administrator's `chown mosquitto FILE` would.
        Mosquitto(mosquitto_broker(&format!(
            "user root\nallow_anonymous false\npassword_file {}\n",
            password_file.display()
        )))
    }

    /// mosquitto_pub's exit status publishing as `user` with `password`.
    fn publish_as(&self, user: &str, password: &str) -> i32 {
        let port = self.0.port.to_string();
        let args = [
            "-p", &port, "-t", "t", "-m", "x", "-u", user, "-P", password,
        ];
        code(&run("/usr/bin/mosquitto_pub", &args, b""))
    }
}

#[test]
fn users_added_and_deleted_in_a_mosquitto_made_file_leave_the_others_intact() {
    if !have(MOSQUITTO_PASSWD) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    mosquitto_passwd(&["-c", "-b", f, "alice", "correct horse"]);
    mosquitto_passwd(&["-H", "sha512", "-b", f, "bob", "pencil"]);
    mosquitto_passwd(&["-b", f, "carol", "pässwörd"]);
    mosquitto_passwd(&["-H", "sha512", "-b", f, "dave", "dave's"]);
    let theirs = text(&file);
    let theirs: Vec<&str> = theirs.lines().collect();

    ok(&["-b", f, "erin", "argon"]);
    ok(&["-H", "sha512-pbkdf2", "-b", f, "bob", "new pencil"]);
    ok(&["-D", f, "carol"]);

    let ours = text(&file);
    let ours: Vec<&str> = ours.lines().collect();
    assert_eq!(ours.len(), 4, "{ours:?}");
    assert_eq!(ours[0], theirs[0], "alice is untouched");
    assert!(ours[1].starts_with("bob:$7$1000$"), "{}", ours[1]);
    assert_eq!(ours[2], theirs[3], "dave is untouched");
    assert!(
        ours[3].starts_with("erin:$argon2id$v=19$m=47104,t=1,p=1$"),
        "{}",
        ours[3]
    );

    // And back: mosquitto_passwd edits pigeon's file without harm.
    mosquitto_passwd(&["-b", f, "frank", "sha"]);
    let file = PasswordFile::read(&file).unwrap();
    for (user, password) in [
        ("alice", "correct horse"),
        ("bob", "new pencil"),
        ("dave", "dave's"),
        ("erin", "argon"),
        ("frank", "sha"),
    ] {
        assert!(file.verify(user, password.as_bytes()), "{user}");
        assert!(!file.verify(user, b"pencil "), "{user}");
    }
    assert!(file.get("carol").is_none());
}

#[test]
fn a_sha512_pbkdf2_file_written_by_pigeon_admits_its_users_to_mosquitto() {
    if !have("/usr/sbin/mosquitto") || !have("/usr/bin/mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    // Comments survive pigeon's edits, and mosquitto skips them.
    std::fs::write(&file, "# test users\n\n").unwrap();
    ok(&["-H", "sha512-pbkdf2", "-b", f, "alice", "correct horse"]);
    ok(&["-H", "sha512-pbkdf2", "-I", "101", "-b", f, "bob", "pencil"]);
    ok(&["-H", "sha512", "-b", f, "carol", "pässwörd"]);
    let written = text(&file);
    assert!(
        written.starts_with("# test users\n\nalice:$7$1000$"),
        "{written}"
    );
    assert!(written.contains("\nbob:$7$101$"), "{written}");
    assert!(written.contains("\ncarol:$6$"), "{written}");

    let broker = Mosquitto::start(&file);
    assert_eq!(broker.publish_as("alice", "correct horse"), 0);
    assert_eq!(broker.publish_as("bob", "pencil"), 0);
    assert_eq!(broker.publish_as("carol", "pässwörd"), 0);
    assert_ne!(broker.publish_as("alice", "correct horsE"), 0);
    assert_ne!(broker.publish_as("bob", "correct horse"), 0);
    assert_ne!(broker.publish_as("nobody", "pencil"), 0);
}

#[test]
fn argon2id_is_the_default_and_the_broker_crate_checks_it() {
    // mosquitto 2.0.11 cannot read argon2id, so the broker crate checks.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    ok(&["-c", "-b", f, "alice", "correct horse"]);
    ok(&["-H", "argon2id", "-b", f, "bob", "-starts-with-a-dash"]);
    let written = text(&file);
    for line in written.lines() {
        assert!(line.contains(":$argon2id$v=19$m=47104,t=1,p=1$"), "{line}");
    }
    let users = PasswordFile::read(&file).unwrap();
    assert!(users.verify("alice", b"correct horse"));
    assert!(users.verify("bob", b"-starts-with-a-dash"));
    assert!(!users.verify("alice", b"Correct horse"));
    assert!(!users.verify("carol", b"correct horse"));
}

#[test]
fn a_password_not_on_the_command_line_is_read_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    // Twice, as typed at mosquitto_passwd's two prompts.
    let out = passwd(
        &["-c", "-H", "sha512-pbkdf2", f, "alice"],
        b"pencil\npencil\n",
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // Or once.
    let out = passwd(&["-H", "sha512-pbkdf2", f, "bob"], b"paper\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let users = PasswordFile::read(&file).unwrap();
    assert!(users.verify("alice", b"pencil"));
    assert!(users.verify("bob", b"paper"));
    let before = text(&file);
    for (input, message) in [
        (
            &b"pencil\npenci1\n"[..],
            "pigeon: the passwords do not match; nothing changed\n",
        ),
        (b"", "pigeon: empty password refused\n"),
        (b"\n\n", "pigeon: empty password refused\n"),
    ] {
        let out = passwd(&[f, "alice"], input);
        assert_eq!((code(&out), stderr(&out).as_str()), (1, message));
        assert_eq!(text(&file), before);
    }
    // Nothing is created when the passwords differ.
    let new = dir.path().join("new");
    let out = passwd(&["-c", s(&new), "alice"], b"a\nb\n");
    assert_eq!(code(&out), 1);
    assert!(!new.exists());
}

#[test]
fn dash_u_hashes_a_plain_text_file_in_place_and_refuses_to_hash_it_twice() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    std::fs::write(&file, "# plain text\nalice:correct horse\n\nbob: pencil\n").unwrap();
    ok(&["-U", f]);
    let hashed = text(&file);
    let lines: Vec<&str> = hashed.lines().collect();
    assert_eq!(lines[0], "# plain text");
    assert!(lines[1].starts_with("alice:$argon2id$"), "{hashed}");
    assert_eq!(lines[2], "");
    assert!(lines[3].starts_with("bob:$argon2id$"), "{hashed}");
    let users = PasswordFile::read(&file).unwrap();
    assert!(users.verify("alice", b"correct horse"));
    // Blanks around a plain-text password were never part of it.
    assert!(users.verify("bob", b"pencil"));

    // mosquitto_passwd -U would hash the hashes; pigeon refuses.
    let out = passwd(&["-U", f], b"");
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        format!(
            "pigeon: {f}: line 2: user alice already has a hashed password; -U hashes \
             plain-text passwords only (hashing a hash would lock the user out)\n"
        )
    );
    assert_eq!(text(&file), hashed);

    // -H applies to -U as well.
    std::fs::write(&file, "carol:paper\n").unwrap();
    ok(&["-U", "-H", "sha512-pbkdf2", f]);
    assert!(text(&file).starts_with("carol:$7$1000$"));
}

#[test]
fn dash_d_deletes_a_user_and_dash_c_starts_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    ok(&["-c", "-H", "sha512", "-b", f, "alice", "a"]);
    ok(&["-H", "sha512", "-b", f, "bob", "b"]);
    ok(&["-D", f, "alice"]);
    let users = PasswordFile::read(&file).unwrap();
    assert_eq!(users.users().collect::<Vec<_>>(), ["bob"]);

    let before = text(&file);
    let out = passwd(&["-D", f, "alice"], b"");
    assert_eq!(
        (code(&out), stderr(&out)),
        (
            1,
            format!("pigeon: user alice is not in {f}; nothing changed\n")
        )
    );
    assert_eq!(text(&file), before);

    // -c overwrites, as mosquitto_passwd's does (and says in --help).
    ok(&["-c", "-H", "sha512", "-b", f, "carol", "c"]);
    let users = PasswordFile::read(&file).unwrap();
    assert_eq!(users.users().collect::<Vec<_>>(), ["carol"]);
    let help = run(PIGEON, &["passwd", "--help"], b"");
    assert!(String::from_utf8_lossy(&help.stdout).contains("An existing file is overwritten"));
}

#[test]
fn mistakes_exit_1_with_one_line_and_leave_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    ok(&["-c", "-H", "sha512", "-b", f, "alice", "a"]);
    let before = text(&file);
    let missing = dir.path().join("missing");
    let m = s(&missing);
    let corrupt = dir.path().join("corrupt");
    std::fs::write(&corrupt, "# users\nalice\n").unwrap();
    let c = s(&corrupt);
    let no_line_2 = format!("pigeon: {c}: line 2: no ':' between");
    for (args, says) in [
        (vec!["-b", f, "a:b", "x"], "must not contain ':'"),
        (
            vec!["-b", m, "bob", "x"],
            "does not exist: add -c to create it",
        ),
        (vec!["-D", m, "bob"], "does not exist: add -c to create it"),
        (
            vec!["-b", f, "bob"],
            "-b needs the password after the user name",
        ),
        (vec![f, "bob", "x"], "needs -b"),
        (
            vec!["-c", "-D", f, "alice"],
            "-c and -D cannot be used together",
        ),
        (
            vec!["-H", "md5", "-b", f, "bob", "x"],
            "unknown hash type \"md5\"",
        ),
        (
            vec!["-I", "5", "-b", f, "bob", "x"],
            "use it with -H sha512-pbkdf2",
        ),
        (vec!["-U", f, "alice"], "-U takes only the password file"),
        (vec![], "give the password file"),
        (vec![f], "give the user name"),
        (vec!["-b", f, "#bob", "x"], "must not start with '#'"),
        (vec!["-b", f, "bob", ""], "empty password refused"),
        (
            vec!["--scram", "-H", "sha512", "-b", f, "bob", "x"],
            "-H and -I do not apply",
        ),
        (vec!["-b", c, "bob", "x"], no_line_2.as_str()),
    ] {
        let out = passwd(&args, b"");
        let message = stderr(&out);
        assert_eq!(code(&out), 1, "{args:?}: {message}");
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(message.starts_with("pigeon: "), "{args:?}: {message}");
        assert!(message.contains(says), "{args:?}: {message}");
        assert_eq!(text(&file), before, "{args:?}");
        assert!(!missing.exists(), "{args:?}");
    }
}

#[cfg(unix)]
#[test]
fn a_new_file_is_private_and_an_edited_one_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = s(&file);
    let mode = || std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    ok(&["-c", "-H", "sha512", "-b", f, "alice", "a"]);
    assert_eq!(mode(), 0o600);
    // A broker in the file's group (root:mosquitto 0640) keeps reading it.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(&["-H", "sha512", "-b", f, "bob", "b"]);
    assert_eq!(mode(), 0o640);
    // Readable by everyone (as mosquitto_passwd leaves it): kept, with a note.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = passwd(&["-H", "sha512", "-b", f, "carol", "c"], b"");
    assert_eq!(code(&out), 0);
    assert_eq!(mode(), 0o644);
    assert!(
        stderr(&out).starts_with("pigeon: note: every user can read"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn scram_users_are_still_written_to_their_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scram");
    let f = s(&file);
    ok(&["--scram", "-b", f, "alice", "wonderland"]);
    let out = passwd(&["--scram", f, "bob"], b"builder\nbuilder\n");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let written = text(&file);
    assert!(
        written.starts_with("alice:SCRAM-SHA-256$4096:"),
        "{written}"
    );
    assert_eq!(ScramSha256::from_file_text(&written).unwrap().len(), 2);
    ok(&["--scram", "-D", f, "alice"]);
    let written = text(&file);
    assert!(written.starts_with("bob:SCRAM-SHA-256$"), "{written}");
    assert_eq!(ScramSha256::from_file_text(&written).unwrap().len(), 1);
}
