//! Authentication: the hook every CONNECT goes through, and MQTT 5's
//! enhanced authentication (AUTH packets, §4.12).
//!
//! An [`Authenticator`] checks CONNECT's user name and password, and offers
//! enhanced authentication methods by name ([`AuthMethod`]); the broker
//! runs a method's challenge/response ([`AuthExchange`]) over AUTH packets
//! before CONNACK, and again when a client re-authenticates. A refusal can
//! point the client at another server (0x9C Use another server, 0x9D Server
//! moved, with a Server Reference). The default policy allows anonymous
//! clients or not, checks user names and passwords against a password file
//! in mosquitto's format ([`password`]) when it has one (else accepts any
//! user name, as mosquitto without a password file), and offers
//! SCRAM-SHA-256 ([`scram`]) when given users.

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use pigeon_proto::{Protocol, ReasonCode};

pub mod acl;
pub mod password;
pub mod scram;

/// Why a client is refused, and where it might go instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reason code (v5; mapped for 3.x clients).
    pub code: ReasonCode,
    /// A Reason String for v5 clients.
    pub reason: Option<String>,
    /// A Server Reference, with 0x9C (Use another server) or 0x9D (Server
    /// moved): where the client should connect instead (§4.11).
    pub server_reference: Option<String>,
}

impl Refusal {
    /// A refusal with a Reason String.
    pub fn with_reason(code: ReasonCode, reason: &str) -> Refusal {
        Refusal {
            code,
            reason: Some(reason.to_owned()),
            server_reference: None,
        }
    }

    /// Sends the client to `server` (0x9C Use another server, or 0x9D Server
    /// moved when `permanent`).
    pub fn redirect(server: &str, permanent: bool) -> Refusal {
        let code = match permanent {
            true => ReasonCode::SERVER_MOVED,
            false => ReasonCode::USE_ANOTHER_SERVER,
        };
        Refusal {
            code,
            reason: None,
            server_reference: Some(server.to_owned()),
        }
    }
}

impl From<ReasonCode> for Refusal {
    fn from(code: ReasonCode) -> Refusal {
        Refusal {
            code,
            reason: None,
            server_reference: None,
        }
    }
}

/// The next step of an enhanced authentication exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send this data to the client (AUTH 0x18) and wait for its answer.
    Continue(Bytes),
    /// Authenticated; the data, if any, goes to the client in CONNACK (or
    /// in AUTH 0x00 after a re-authentication).
    Success(Option<Bytes>),
    /// Refused.
    Fail(Refusal),
}

/// An enhanced authentication method (CONNECT's Authentication Method).
pub trait AuthMethod: Debug + Send + Sync {
    /// Its name, as clients write it.
    fn name(&self) -> &str;
    /// Begins an exchange with the client's first Authentication Data (from
    /// CONNECT, or from AUTH 0x19 when re-authenticating).
    fn start(&self, data: Option<&[u8]>) -> (Box<dyn AuthExchange>, AuthStep);
}

/// One exchange of an [`AuthMethod`] with one client.
pub trait AuthExchange: Debug + Send {
    /// The client's next Authentication Data (AUTH 0x18).
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep;
    /// Who the exchange authenticated (or is authenticating), if known.
    fn user(&self) -> Option<&str> {
        None
    }
}

/// What a client presents in CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The client identifier (possibly empty before one is assigned).
    pub client_id: &'a str,
    /// The user name, if sent.
    pub username: Option<&'a str>,
    /// The password, if sent.
    pub password: Option<&'a [u8]>,
    /// The protocol version.
    pub protocol: Protocol,
    /// Whether the listener the client came in on admits clients without a
    /// user name (`Config::anonymous_allowed`).
    pub anonymous_allowed: bool,
    /// The listener: `None` for `listen`, else its index in
    /// `Config::listeners` (each may have its own password file).
    pub listener: Option<usize>,
}

/// Decides whether a client may connect.
pub trait Authenticator: Debug + Send + Sync {
    /// For a CONNECT without an Authentication Method: `Ok` to accept, or
    /// the refusal (v5 codes; they are mapped for 3.x clients: 0x86 → 4,
    /// 0x87 → 5, others → 3).
    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<(), Refusal>;

    /// Whether `authenticate` may take long for these credentials (a slow
    /// password hash): the broker then calls it on a blocking thread, so
    /// one login does not hold up other connections.
    fn blocking(&self, credentials: &Credentials<'_>) -> bool {
        let _ = credentials;
        false
    }

    /// Reads its files again (SIGHUP). On an error the old state stays and
    /// the error is returned, to be logged.
    fn reload(&self, config: &crate::Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }

    /// The enhanced authentication method called `name`, if offered. A
    /// CONNECT naming another gets CONNACK 0x8C (MQTT-4.12.0-1).
    fn method(&self, name: &str) -> Option<&dyn AuthMethod> {
        let _ = name;
        None
    }
}

/// The default: clients without a user name are accepted only where the
/// listener allows anonymous access; with a password file, a user name must be in it with
/// the password given (else any user name is accepted). SCRAM-SHA-256 is
/// offered when it has users.
#[derive(Debug, Default)]
pub struct DefaultPolicy {
    /// Users and password hashes, if a password file is configured
    /// (replaced whole on reload).
    pub passwords: std::sync::RwLock<Passwords>,
    /// SCRAM-SHA-256 users, if configured.
    pub scram: Option<scram::ScramSha256>,
}

/// The password files of a configuration: the global one and each
/// listener's own.
#[derive(Debug, Default, Clone)]
pub struct Passwords {
    /// `password_file`.
    pub global: Option<Arc<password::PasswordFile>>,
    /// Each `[[listeners]]` entry's `password_file`, by index.
    pub listeners: Vec<Option<Arc<password::PasswordFile>>>,
}

impl Passwords {
    /// The file that applies to clients of `listener` (`None`: `listen`).
    pub fn of(&self, listener: Option<usize>) -> Option<&Arc<password::PasswordFile>> {
        match listener.and_then(|i| self.listeners.get(i)) {
            Some(Some(own)) => Some(own),
            _ => self.global.as_ref(),
        }
    }
}

impl DefaultPolicy {
    /// The policy `config` describes, reading its SCRAM users file if it
    /// names one.
    pub fn from_config(config: &crate::Config) -> Result<DefaultPolicy, crate::ConfigError> {
        let path = &config.scram_users_file;
        let scram = match path.as_os_str().is_empty() {
            true => None,
            false => {
                let bad = |allowed: String| crate::ConfigError::Value {
                    key: "scram_users_file".into(),
                    value: path.display().to_string(),
                    allowed,
                };
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot be read ({e})")))?;
                let scram = scram::ScramSha256::from_file_text(&text).map_err(bad)?;
                Some(scram)
            }
        };
        let passwords = read_passwords(config)?;
        Ok(DefaultPolicy {
            passwords: std::sync::RwLock::new(passwords),
            scram,
        })
    }

    fn passwords(&self, listener: Option<usize>) -> Option<Arc<password::PasswordFile>> {
        let held = self.passwords.read().unwrap_or_else(|e| e.into_inner());
        held.of(listener).cloned()
    }
}

/// The password files `config` names.
fn read_passwords(config: &crate::Config) -> Result<Passwords, crate::ConfigError> {
    let read = |key: String, path: &std::path::Path| {
        password::PasswordFile::read(path)
            .map(Arc::new)
            .map_err(|e| crate::ConfigError::Value {
                key,
                value: path.display().to_string(),
                allowed: format!("{e} (make one with `pigeon passwd -c FILE USER`)"),
            })
    };
    let global = match config.password_file.as_os_str().is_empty() {
        true => None,
        false => Some(read("password_file".into(), &config.password_file)?),
    };
    let mut listeners = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        listeners.push(match &l.password_file {
            Some(path) => Some(read(format!("listeners[{i}].password_file"), path)?),
            None => None,
        });
    }
    Ok(Passwords { global, listeners })
}

impl Authenticator for DefaultPolicy {
    fn reload(&self, config: &crate::Config) -> Result<(), String> {
        let passwords = read_passwords(config).map_err(|e| e.to_string())?;
        let mut held = self.passwords.write().unwrap_or_else(|e| e.into_inner());
        *held = passwords;
        Ok(())
    }

    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<(), Refusal> {
        match (credentials.username, self.passwords(credentials.listener)) {
            (None, _) if !credentials.anonymous_allowed => Err(Refusal::with_reason(
                ReasonCode::NOT_AUTHORIZED,
                "anonymous clients are not allowed: give a user name and password",
            )),
            (None, _) | (Some(_), None) => Ok(()),
            (Some(user), Some(file)) => {
                match file.verify(user, credentials.password.unwrap_or_default()) {
                    true => Ok(()),
                    // 0x86 in 5.0; return code 4 in 3.1.1.
                    false => Err(Refusal::with_reason(
                        ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                        "bad user name or password",
                    )),
                }
            }
        }
    }

    fn blocking(&self, credentials: &Credentials<'_>) -> bool {
        credentials.username.is_some() && self.passwords(credentials.listener).is_some()
    }

    fn method(&self, name: &str) -> Option<&dyn AuthMethod> {
        let scram = self.scram.as_ref().filter(|s| s.name() == name)?;
        Some(scram)
    }
}
