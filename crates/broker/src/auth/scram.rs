//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced
//! authentication method.
//!
//! The exchange over CONNECT / AUTH / CONNACK:
//!
//! 1. CONNECT, method `SCRAM-SHA-256`, data `n,,n=USER,r=CLIENT_NONCE`.
//! 2. AUTH 0x18 from the broker: `r=NONCE,s=SALT,i=ITERATIONS`.
//! 3. AUTH 0x18 from the client: `c=biws,r=NONCE,p=PROOF`.
//! 4. CONNACK (or AUTH 0x00 after a re-authentication) with `v=SIGNATURE`,
//!    which proves to the client that the broker knows its secret.
//!
//! The broker keeps only the salted secrets (StoredKey, ServerKey), never a
//! password, in RFC 5803's text form: `SCRAM-SHA-256$ITER:SALT$STORED:SERVER`.
//! An unknown user gets the same exchange as a known one with a made-up
//! secret, so the answer does not reveal which user names exist.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use pigeon_proto::ReasonCode;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{AuthExchange, AuthMethod, AuthStep, Refusal};

/// The method's name, as CONNECT's Authentication Method carries it.
pub const METHOD: &str = "SCRAM-SHA-256";

/// Iterations for secrets made here (RFC 7677 asks for at least 4096).
pub const DEFAULT_ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

/// What the broker keeps for one user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramSecret")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SaltedPassword, ClientKey and ServerKey of RFC 5802 §3.
fn keys(password: &[u8], salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
    (hmac(&salted, b"Client Key"), hmac(&salted, b"Server Key"))
}

impl ScramSecret {
    /// The secret for `password` with a fresh random salt.
    pub fn new(password: &str, iterations: u32) -> ScramSecret {
        let mut salt = vec![0u8; 16];
        fill_random(&mut salt);
        ScramSecret::derive(password, &salt, iterations)
    }

    /// The secret for `password` with this salt.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        let (client_key, server_key) = keys(password.as_bytes(), salt, iterations);
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key,
        }
    }

    /// RFC 5803's form: `SCRAM-SHA-256$ITER:SALT$STORED_KEY:SERVER_KEY`.
    pub fn to_rfc5803(&self) -> String {
        format!(
            "{METHOD}${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }

    /// Reads RFC 5803's form back.
    pub fn parse(text: &str) -> Result<ScramSecret, String> {
        let bad =
            || format!("not a {METHOD} secret (want {METHOD}$ITERATIONS:SALT$STOREDKEY:SERVERKEY)");
        let rest = text
            .strip_prefix(METHOD)
            .and_then(|r| r.strip_prefix('$'))
            .ok_or_else(bad)?;
        let (params, keys) = rest.split_once('$').ok_or_else(bad)?;
        let (iterations, salt) = params.split_once(':').ok_or_else(bad)?;
        let (stored, server) = keys.split_once(':').ok_or_else(bad)?;
        let key = |k: &str| -> Result<[u8; 32], String> {
            B64.decode(k)
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(bad)
        };
        let iterations: u32 = iterations.parse().map_err(|_| bad())?;
        if iterations == 0 {
            return Err(bad());
        }
        Ok(ScramSecret {
            iterations,
            salt: B64.decode(salt).map_err(|_| bad())?,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

/// Fills `buf` from the operating system's random source.
fn fill_random(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        // No OS randomness: refuse to run SCRAM with predictable nonces.
        panic!("the operating system's random number source failed");
    }
}

/// SCRAM-SHA-256 with a table of users.
#[derive(Debug, Default)]
pub struct ScramSha256 {
    users: HashMap<String, ScramSecret>,
    /// Made-up secret parameters for unknown users (fixed per broker run,
    /// so asking twice gives the same salt, as for a real user).
    decoy_salt: Vec<u8>,
}

impl ScramSha256 {
    /// The method for these users.
    pub fn new(users: HashMap<String, ScramSecret>) -> ScramSha256 {
        let mut decoy_salt = vec![0u8; 16];
        fill_random(&mut decoy_salt);
        ScramSha256 { users, decoy_salt }
    }

    /// Reads a users file: one `USER:SCRAM-SHA-256$…` line per user; blank
    /// lines and lines starting with `#` are skipped.
    pub fn from_file_text(text: &str) -> Result<ScramSha256, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, secret) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: want USER:{METHOD}$…", n + 1))?;
            let secret = ScramSecret::parse(secret).map_err(|e| format!("line {}: {e}", n + 1))?;
            users.insert(user.to_owned(), secret);
        }
        Ok(ScramSha256::new(users))
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

impl AuthMethod for ScramSha256 {
    fn name(&self) -> &str {
        METHOD
    }

    fn start(&self, data: Option<&[u8]>) -> (Box<dyn AuthExchange>, AuthStep) {
        let refuse = |why: &str| {
            let exchange: Box<dyn AuthExchange> = Box::new(Finished);
            (
                exchange,
                AuthStep::Fail(Refusal::with_reason(ReasonCode::NOT_AUTHORIZED, why)),
            )
        };
        let Some(first) = data.and_then(|d| std::str::from_utf8(d).ok()) else {
            return refuse("SCRAM: the client-first-message is missing or not UTF-8");
        };
        // gs2-header: no channel binding ("n" or "y"), no authzid.
        let (gs2, bare) = match first.split_once(",,") {
            Some((cb @ ("n" | "y"), bare)) => (format!("{cb},,"), bare),
            _ => return refuse("SCRAM: channel binding and authzid are not supported"),
        };
        let (Some(user), Some(client_nonce)) = (attribute(bare, 'n'), attribute(bare, 'r')) else {
            return refuse("SCRAM: the client-first-message lacks n= or r=");
        };
        let user = user.replace("=2C", ",").replace("=3D", "=");
        let secret = match self.users.get(&user) {
            Some(secret) => secret.clone(),
            // A decoy with a random key: the proof cannot match.
            None => {
                let mut secret = ScramSecret::derive("", &self.decoy_salt, DEFAULT_ITERATIONS);
                fill_random(&mut secret.stored_key);
                secret
            }
        };
        let mut ours = [0u8; 18];
        fill_random(&mut ours);
        let nonce = format!("{client_nonce}{}", B64.encode(ours));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&secret.salt),
            secret.iterations
        );
        let exchange = AwaitFinal {
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            gs2_header: gs2,
            nonce,
            user,
            secret,
        };
        (
            Box::new(exchange),
            AuthStep::Continue(Bytes::from(server_first)),
        )
    }
}

/// The value of attribute `name` (`name=value`) in a SCRAM message.
fn attribute(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|part| {
        let mut chars = part.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &part[2..])
    })
}

/// Waiting for the client-final-message.
struct AwaitFinal {
    client_first_bare: String,
    server_first: String,
    gs2_header: String,
    nonce: String,
    user: String,
    secret: ScramSecret,
}

impl std::fmt::Debug for AwaitFinal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwaitFinal")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl AuthExchange for AwaitFinal {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        let fail =
            |why: &str| AuthStep::Fail(Refusal::with_reason(ReasonCode::NOT_AUTHORIZED, why));
        let Some(last) = data.and_then(|d| std::str::from_utf8(d).ok()) else {
            return fail("SCRAM: the client-final-message is missing or not UTF-8");
        };
        let Some((without_proof, proof)) = last.rsplit_once(",p=") else {
            return fail("SCRAM: the client-final-message has no proof");
        };
        let binding = B64.encode(self.gs2_header.as_bytes());
        if attribute(without_proof, 'c') != Some(&binding)
            || attribute(without_proof, 'r') != Some(&self.nonce)
        {
            return fail("SCRAM: channel binding or nonce do not match");
        }
        let Some(proof) = B64
            .decode(proof)
            .ok()
            .and_then(|p| <[u8; 32]>::try_from(p).ok())
        else {
            return fail("SCRAM: the proof is not 32 bytes of base64");
        };
        let auth_message = format!(
            "{},{},{without_proof}",
            self.client_first_bare, self.server_first
        );
        let signature = hmac(&self.secret.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (k, (p, s)) in client_key.iter_mut().zip(proof.iter().zip(signature)) {
            *k = p ^ s;
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if !bool::from(stored.ct_eq(&self.secret.stored_key)) {
            tracing::info!(user = %self.user, "SCRAM: wrong password or unknown user");
            return fail("SCRAM: authentication failed");
        }
        let server_signature = hmac(&self.secret.server_key, auth_message.as_bytes());
        AuthStep::Success(Some(Bytes::from(format!(
            "v={}",
            B64.encode(server_signature)
        ))))
    }

    fn user(&self) -> Option<&str> {
        Some(&self.user)
    }
}

/// An exchange that has ended.
#[derive(Debug)]
struct Finished;

impl AuthExchange for Finished {
    fn step(&mut self, _: Option<&[u8]>) -> AuthStep {
        AuthStep::Fail(Refusal::from(ReasonCode::NOT_AUTHORIZED))
    }
}

/// The client's half, for tests and for clients built on this crate.
#[derive(Debug)]
pub struct ScramClient {
    user: String,
    password: String,
    client_nonce: String,
    state: Option<(String, [u8; 32])>,
}

impl ScramClient {
    /// A client for `user` with `password`.
    pub fn new(user: &str, password: &str) -> ScramClient {
        let mut nonce = [0u8; 18];
        fill_random(&mut nonce);
        ScramClient {
            user: user.to_owned(),
            password: password.to_owned(),
            client_nonce: B64.encode(nonce),
            state: None,
        }
    }

    /// The client-first-message (CONNECT's Authentication Data).
    pub fn first(&self) -> Vec<u8> {
        let user = self.user.replace('=', "=3D").replace(',', "=2C");
        format!("n,,n={user},r={}", self.client_nonce).into_bytes()
    }

    /// The client-final-message answering the server-first-message.
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first).map_err(|e| e.to_string())?;
        let nonce = attribute(server_first, 'r').ok_or("no r=")?;
        if !nonce.starts_with(&self.client_nonce) {
            return Err("the server's nonce does not extend ours".into());
        }
        let salt = B64
            .decode(attribute(server_first, 's').ok_or("no s=")?)
            .map_err(|e| e.to_string())?;
        let iterations: u32 = attribute(server_first, 'i')
            .ok_or("no i=")?
            .parse()
            .map_err(|_| "bad i=")?;
        let (client_key, server_key) = keys(self.password.as_bytes(), &salt, iterations);
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let user = self.user.replace('=', "=3D").replace(',', "=2C");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!(
            "n={user},r={},{server_first},{without_proof}",
            self.client_nonce
        );
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.state = Some((
            auth_message.clone(),
            hmac(&server_key, auth_message.as_bytes()),
        ));
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Whether the server-final-message proves the server knows our secret.
    pub fn verify(&self, server_final: &[u8]) -> bool {
        let Some((_, expected)) = &self.state else {
            return false;
        };
        let got = std::str::from_utf8(server_final)
            .ok()
            .and_then(|s| s.strip_prefix("v="));
        got.and_then(|v| B64.decode(v).ok())
            .is_some_and(|v| v[..].ct_eq(&expected[..]).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn method() -> ScramSha256 {
        let mut users = HashMap::new();
        users.insert("user".to_owned(), ScramSecret::new("pencil", 4096));
        ScramSha256::new(users)
    }

    fn run(method: &ScramSha256, user: &str, password: &str) -> (AuthStep, ScramClient) {
        let mut client = ScramClient::new(user, password);
        let (mut exchange, step) = method.start(Some(&client.first()));
        let AuthStep::Continue(server_first) = step else {
            panic!("expected the server-first-message");
        };
        let last = client.last(&server_first).unwrap();
        (exchange.step(Some(&last)), client)
    }

    #[test]
    fn the_right_password_succeeds_and_the_server_proves_itself() {
        let (step, client) = run(&method(), "user", "pencil");
        let AuthStep::Success(Some(server_final)) = step else {
            panic!("expected success");
        };
        assert!(client.verify(&server_final));
        assert!(!client.verify(b"v=AAAA"));
    }

    #[test]
    fn a_wrong_password_or_unknown_user_fails_the_same_way() {
        let m = method();
        for (user, password) in [("user", "pen"), ("nobody", "pencil")] {
            let (step, _) = run(&m, user, password);
            assert!(
                matches!(step, AuthStep::Fail(r) if r.code == ReasonCode::NOT_AUTHORIZED),
                "{user}"
            );
        }
    }

    #[test]
    fn rfc7677_test_vector() {
        // RFC 7677 §3: user "user", password "pencil", the client nonce
        // "rOprNGfwEbeRWgbNEkqO", server nonce suffix
        // "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", salt "W22ZaJ0SNY7soEsUEjb6gQ==",
        // 4096 iterations: the proof and server signature are fixed.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let secret = ScramSecret::derive("pencil", &salt, 4096);
        let mut exchange = AwaitFinal {
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO".into(),
            server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".into(),
            gs2_header: "n,,".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            user: "user".into(),
            secret,
        };
        let last = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let AuthStep::Success(Some(v)) = exchange.step(Some(last.as_bytes())) else {
            panic!("the RFC's proof must verify");
        };
        assert_eq!(&v[..], b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    }

    #[test]
    fn secrets_round_trip_through_rfc5803_text() {
        let s = ScramSecret::new("pencil", 4096);
        assert_eq!(ScramSecret::parse(&s.to_rfc5803()).unwrap(), s);
        assert!(ScramSecret::parse("SCRAM-SHA-1$4096:abc$def:ghi").is_err());
        let text = format!("# users\nuser:{}\n\n", s.to_rfc5803());
        assert_eq!(ScramSha256::from_file_text(&text).unwrap().len(), 1);
        assert!(ScramSha256::from_file_text("user:nonsense")
            .unwrap_err()
            .contains("line 1"));
    }
}
