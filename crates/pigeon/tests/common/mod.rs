//! What the `pigeon` binary's tests share: running a program to its end
//! (with a time limit), and brokers (`pigeon broker`, Debian's mosquitto)
//! on free loopback ports, stopped by PID on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const PIGEON: &str = env!("CARGO_BIN_EXE_pigeon");

/// How long any one program may run.
pub const LIMIT: Duration = Duration::from_secs(60);

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + LIMIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a Debian program is installed; says so when it is not.
pub fn have(program: &str) -> bool {
    let found = Path::new("/usr/bin").join(program).exists()
        || Path::new("/usr/sbin").join(program).exists()
        || Path::new(program).exists();
    if !found {
        eprintln!(
            "skipped: {program} is not installed (apt-get install mosquitto mosquitto-clients)"
        );
    }
    found
}

/// A server process on a free loopback port, killed on drop; `dir` lives
/// as long as it does.
pub struct Service {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `program args` with `-p PORT` appended … or, for mosquitto, the
/// configuration `listener PORT 127.0.0.1` followed by `extra`.
fn serve(program: &str, args: &[String], port: u16, dir: tempfile::TempDir) -> Service {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    wait_listening(port);
    Service { child, port, dir }
}

/// `pigeon ARGS -p PORT` (a broker also gets a fresh data directory and
/// memory durability).
pub fn pigeon_server(args: &[&str]) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend(["-p".into(), port.to_string()]);
    if args.first() == Some(&"broker") {
        all.extend(
            [
                "--bind",
                "127.0.0.1",
                "--durability",
                "memory",
                "--data-dir",
            ]
            .map(String::from),
        );
        all.push(dir.path().display().to_string());
    }
    serve(PIGEON, &all, port, dir)
}

pub fn pigeon_broker() -> Service {
    pigeon_server(&["broker"])
}

/// Debian's mosquitto with `extra` configuration after its listener line.
pub fn mosquitto_broker(extra: &str) -> Service {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{extra}")).unwrap();
    let args = vec!["-c".to_owned(), conf.display().to_string()];
    serve("/usr/sbin/mosquitto", &args, port, dir)
}

/// Runs a program to its end (killed after `LIMIT`), with `stdin`.
pub fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    finish(child)
}

/// Waits for a program started with piped output (killed after `LIMIT`).
pub fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + LIMIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a program did not finish in {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Starts a program in the background with piped output.
pub fn background(program: &str, args: &[&str]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn pigeon(args: &[&str]) -> Output {
    run(PIGEON, args, b"")
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The test CA, to sign more certificates with.
pub type Ca = rcgen::Issuer<'static, rcgen::KeyPair>;

/// A CA (`ca.pem`), a server certificate for localhost (`server.pem`,
/// `server.key`) and a client certificate (`client.pem`, `client.key`)
/// signed by it, made with rcgen into `dir`. Returns the CA.
pub fn make_pki(dir: &Path) -> Ca {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // OpenSSL (mosquitto) finds the issuer by name: the CA needs one.
    ca.distinguished_name
        .push(DnType::CommonName, "pigeon test CA");
    let ca_key = KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    for name in ["server", "client"] {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
    issuer
}

/// `pigeon broker -c` with `config` written to `dir/pigeon.toml`, its log
/// in `dir/broker.log`, once every port in `ports` listens (the first is
/// the service's port).
pub fn pigeon_with_config(dir: &Path, config: &str, ports: &[u16]) -> Service {
    let path = dir.join("pigeon.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("broker.log")).unwrap();
    let child = Command::new(PIGEON)
        .args(["broker", "-c", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    for port in ports {
        wait_listening(*port);
    }
    Service {
        child,
        port: ports[0],
        dir: tempfile::tempdir().unwrap(),
    }
}

/// CONNECT (3.1.1, clean session, keep-alive 60) for client `id`, as bytes.
pub fn connect_bytes(id: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60];
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}
