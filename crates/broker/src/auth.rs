//! Authentication: the hook every CONNECT goes through. This issue ships the
//! default policy (anonymous allowed or not, any user name accepted, as
//! mosquitto without a password file); password files and ACLs plug in
//! behind the same trait.

use std::fmt::Debug;

use pigeon_proto::{Protocol, ReasonCode};

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
}

/// Decides whether a client may connect.
pub trait Authenticator: Debug + Send + Sync {
    /// `Ok` to accept, or the CONNACK reason code to refuse with (v5 codes;
    /// they are mapped for 3.x clients: 0x86 → 4, 0x87 → 5).
    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<(), ReasonCode>;
}

/// The default: clients without a user name are accepted only if anonymous
/// access is allowed; any user name is accepted (there is no password file).
#[derive(Debug, Clone, Copy)]
pub struct DefaultPolicy {
    /// Whether clients without a user name may connect.
    pub allow_anonymous: bool,
}

impl Authenticator for DefaultPolicy {
    fn authenticate(&self, credentials: &Credentials<'_>) -> Result<(), ReasonCode> {
        match (credentials.username, self.allow_anonymous) {
            (None, false) => Err(ReasonCode::NOT_AUTHORIZED),
            _ => Ok(()),
        }
    }
}
