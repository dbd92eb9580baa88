//! One password hash: parsing the three layouts, hashing a new password,
//! and checking a password against a hash in constant time.

use std::fmt;

use argon2::{Argon2, Params, Version};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

/// argon2id's memory for new hashes, in KiB (46 MiB). With
/// [`ARGON2_PASSES`] and [`ARGON2_LANES`] these are mosquitto 2.1's
/// parameters, which are also the first of OWASP's recommended argon2id
/// configurations (Password Storage Cheat Sheet: m=47104 KiB, t=1, p=1).
pub const ARGON2_MEMORY_KIB: u32 = 47104;
/// argon2id's passes over memory (t) for new hashes.
pub const ARGON2_PASSES: u32 = 1;
/// argon2id's lanes (p) for new hashes.
pub const ARGON2_LANES: u32 = 1;
/// PBKDF2 iterations for new `$7$` hashes: mosquitto 2.1's default.
/// mosquitto 2.0.11 wrote 101 and reads any count; `$7$` is for files that
/// mosquitto 2.0 must read, argon2id is the strong choice.
pub const PBKDF2_ITERATIONS: u32 = 1000;

/// Salt bytes for new `$6$` / `$7$` hashes: mosquitto 2.0 reads only 12.
const SHA512_SALT_LEN: usize = 12;
/// Salt bytes for new argon2id hashes (RFC 9106 recommends 16).
const ARGON2_SALT_LEN: usize = 16;
/// Output bytes for new argon2id hashes (RFC 9106 recommends 32).
const ARGON2_HASH_LEN: usize = 32;

/// Standard base64 that reads with or without padding.
const ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a new password is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Scheme {
    /// argon2id (version 0x13); written as a PHC string.
    Argon2id {
        /// Memory in KiB (m).
        memory_kib: u32,
        /// Passes over the memory (t).
        passes: u32,
        /// Lanes (p).
        lanes: u32,
    },
    /// PBKDF2-HMAC-SHA512, `$7$`.
    Sha512Pbkdf2 {
        /// The iteration count.
        iterations: u32,
    },
    /// One salted SHA-512, `$6$`: fast to guess, for mosquitto ≤ 1.6 only.
    Sha512,
}

impl Scheme {
    /// argon2id with mosquitto 2.1's parameters, the default.
    pub const ARGON2ID: Scheme = Scheme::Argon2id {
        memory_kib: ARGON2_MEMORY_KIB,
        passes: ARGON2_PASSES,
        lanes: ARGON2_LANES,
    };
    /// `$7$` with [`PBKDF2_ITERATIONS`].
    pub const SHA512_PBKDF2: Scheme = Scheme::Sha512Pbkdf2 {
        iterations: PBKDF2_ITERATIONS,
    };

    /// The scheme mosquitto_passwd's `-H` calls `name` (`argon2id`,
    /// `sha512-pbkdf2` or `sha512`), with default parameters.
    pub fn from_name(name: &str) -> Option<Scheme> {
        match name {
            "argon2id" => Some(Scheme::ARGON2ID),
            "sha512-pbkdf2" => Some(Scheme::SHA512_PBKDF2),
            "sha512" => Some(Scheme::Sha512),
            _ => None,
        }
    }

    /// Its `-H` name.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Argon2id { .. } => "argon2id",
            Scheme::Sha512Pbkdf2 { .. } => "sha512-pbkdf2",
            Scheme::Sha512 => "sha512",
        }
    }

    /// The name with the prefix, for messages.
    fn label(&self) -> &'static str {
        match self {
            Scheme::Argon2id { .. } => "argon2id",
            Scheme::Sha512Pbkdf2 { .. } => "sha512-pbkdf2 ($7$)",
            Scheme::Sha512 => "sha512 ($6$)",
        }
    }
}

impl Default for Scheme {
    fn default() -> Scheme {
        Scheme::ARGON2ID
    }
}

/// What is wrong with a hash, or with making one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Not one of the layouts this module reads.
    #[error(
        "not a password hash pigeon reads (want $argon2id$…, $7$… or $6$…; \
         a plain-text password must be hashed first: pigeon passwd -U FILE)"
    )]
    Unknown,
    /// One of the layouts, but broken.
    #[error("malformed {scheme} hash: {problem}")]
    Malformed {
        /// Which layout.
        scheme: &'static str,
        /// What is wrong, for a person.
        problem: String,
    },
    /// Parameters no hash can be made with (zero iterations, too little
    /// argon2 memory for its lanes).
    #[error("cannot hash with {scheme}: {problem}")]
    Parameters {
        /// Which scheme.
        scheme: &'static str,
        /// What is wrong, for a person.
        problem: String,
    },
    /// The operating system gave no random bytes for a salt.
    #[error("cannot make a salt: the operating system's random number source failed")]
    Random,
}

/// One password hash from a password file.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash {
    kind: Kind,
}

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Sha512 {
        salt: Vec<u8>,
        hash: [u8; 64],
    },
    Sha512Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: [u8; 64],
    },
    Argon2id {
        version: Version,
        params: Params,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl fmt::Debug for PasswordHash {
    /// Shows the scheme and its parameters, never the salt or hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PasswordHash").field(&self.scheme()).finish()
    }
}

impl PasswordHash {
    /// Reads a hash as it appears after `USER:` in a password file.
    pub fn parse(text: &str) -> Result<PasswordHash, HashError> {
        let kind = if let Some(rest) = text.strip_prefix("$6$") {
            parse_sha512(rest)?
        } else if let Some(rest) = text.strip_prefix("$7$") {
            parse_sha512_pbkdf2(rest)?
        } else if let Some(rest) = text.strip_prefix("$argon2id$") {
            parse_argon2id(rest)?
        } else if text.starts_with("$argon2") {
            return Err(malformed(
                "argon2",
                "only the argon2id variant is supported (not argon2i or argon2d)",
            ));
        } else {
            return Err(HashError::Unknown);
        };
        Ok(PasswordHash { kind })
    }

    /// Whether `text` starts like a hash this module writes, so that
    /// hashing it as a password would be a mistake.
    pub fn looks_hashed(text: &str) -> bool {
        ["$6$", "$7$", "$argon2"]
            .iter()
            .any(|p| text.starts_with(p))
    }

    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &[u8], scheme: Scheme) -> Result<PasswordHash, HashError> {
        let mut salt = vec![0u8; salt_len(scheme)];
        getrandom::fill(&mut salt).map_err(|_| HashError::Random)?;
        PasswordHash::with_salt(password, scheme, &salt)
    }

    /// Hashes `password` with this salt (for tests and known vectors; use
    /// [`PasswordHash::new`] otherwise).
    pub fn with_salt(
        password: &[u8],
        scheme: Scheme,
        salt: &[u8],
    ) -> Result<PasswordHash, HashError> {
        let refuse = |problem: &str| HashError::Parameters {
            scheme: scheme.label(),
            problem: problem.to_owned(),
        };
        if salt.is_empty() {
            return Err(refuse("the salt is empty"));
        }
        let kind = match scheme {
            Scheme::Sha512 => Kind::Sha512 {
                salt: salt.to_vec(),
                hash: sha512(password, salt),
            },
            Scheme::Sha512Pbkdf2 { iterations: 0 } => {
                return Err(refuse("the iteration count must be at least 1"))
            }
            Scheme::Sha512Pbkdf2 { iterations } => Kind::Sha512Pbkdf2 {
                iterations,
                salt: salt.to_vec(),
                hash: pbkdf2_sha512(password, salt, iterations),
            },
            Scheme::Argon2id {
                memory_kib,
                passes,
                lanes,
            } => {
                let params = Params::new(memory_kib, passes, lanes, None)
                    .map_err(|e| refuse(&e.to_string()))?;
                let mut hash = vec![0u8; ARGON2_HASH_LEN];
                argon2id(Version::V0x13, &params, password, salt, &mut hash)
                    .map_err(|e| refuse(&e.to_string()))?;
                Kind::Argon2id {
                    version: Version::V0x13,
                    params,
                    salt: salt.to_vec(),
                    hash,
                }
            }
        };
        Ok(PasswordHash { kind })
    }

    /// Whether `password` is the one this hash was made from. The hashes
    /// are compared in constant time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match &self.kind {
            Kind::Sha512 { salt, hash } => sha512(password, salt)[..].ct_eq(&hash[..]).into(),
            Kind::Sha512Pbkdf2 {
                iterations,
                salt,
                hash,
            } => pbkdf2_sha512(password, salt, *iterations)[..]
                .ct_eq(&hash[..])
                .into(),
            Kind::Argon2id {
                version,
                params,
                salt,
                hash,
            } => {
                let mut computed = vec![0u8; hash.len()];
                argon2id(*version, params, password, salt, &mut computed).is_ok()
                    && bool::from(computed[..].ct_eq(&hash[..]))
            }
        }
    }

    /// The scheme and parameters this hash was made with.
    pub fn scheme(&self) -> Scheme {
        match &self.kind {
            Kind::Sha512 { .. } => Scheme::Sha512,
            Kind::Sha512Pbkdf2 { iterations, .. } => Scheme::Sha512Pbkdf2 {
                iterations: *iterations,
            },
            Kind::Argon2id { params, .. } => Scheme::Argon2id {
                memory_kib: params.m_cost(),
                passes: params.t_cost(),
                lanes: params.p_cost(),
            },
        }
    }
}

impl fmt::Display for PasswordHash {
    /// The text after `USER:`, in the layout mosquitto writes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Sha512 { salt, hash } => {
                write!(f, "$6${}${}", STANDARD.encode(salt), STANDARD.encode(hash))
            }
            Kind::Sha512Pbkdf2 {
                iterations,
                salt,
                hash,
            } => write!(
                f,
                "$7${iterations}${}${}",
                STANDARD.encode(salt),
                STANDARD.encode(hash)
            ),
            Kind::Argon2id {
                version,
                params,
                salt,
                hash,
            } => write!(
                f,
                "$argon2id$v={}$m={},t={},p={}${}${}",
                *version as u32,
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                STANDARD_NO_PAD.encode(salt),
                STANDARD_NO_PAD.encode(hash)
            ),
        }
    }
}

fn salt_len(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Argon2id { .. } => ARGON2_SALT_LEN,
        Scheme::Sha512Pbkdf2 { .. } | Scheme::Sha512 => SHA512_SALT_LEN,
    }
}

fn sha512(password: &[u8], salt: &[u8]) -> [u8; 64] {
    Sha512::new()
        .chain_update(password)
        .chain_update(salt)
        .finalize()
        .into()
}

fn pbkdf2_sha512(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 64] {
    let mut out = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
    out
}

fn argon2id(
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    Argon2::new(argon2::Algorithm::Argon2id, version, params.clone())
        .hash_password_into(password, salt, out)
}

fn malformed(scheme: &'static str, problem: &str) -> HashError {
    HashError::Malformed {
        scheme,
        problem: problem.to_owned(),
    }
}

/// Splits `rest` at `$` into exactly `N` fields, or says which layout was
/// expected.
fn fields<const N: usize>(
    rest: &str,
    scheme: &'static str,
    layout: &str,
) -> Result<[String; N], HashError> {
    let parts: Vec<String> = rest.split('$').map(str::to_owned).collect();
    parts
        .try_into()
        .map_err(|_| malformed(scheme, &format!("want {layout}")))
}

fn decode(scheme: &'static str, what: &str, text: &str) -> Result<Vec<u8>, HashError> {
    match ANY_PADDING.decode(text) {
        Ok(bytes) if bytes.is_empty() => Err(malformed(scheme, &format!("the {what} is empty"))),
        Ok(bytes) => Ok(bytes),
        Err(_) => Err(malformed(scheme, &format!("the {what} is not base64"))),
    }
}

fn digest64(scheme: &'static str, text: &str) -> Result<[u8; 64], HashError> {
    decode(scheme, "hash", text)?
        .try_into()
        .map_err(|_| malformed(scheme, "the hash is not 64 bytes"))
}

fn parse_sha512(rest: &str) -> Result<Kind, HashError> {
    const SCHEME: &str = "sha512 ($6$)";
    let [salt, hash] = fields(rest, SCHEME, "$6$SALT$HASH")?;
    Ok(Kind::Sha512 {
        salt: decode(SCHEME, "salt", &salt)?,
        hash: digest64(SCHEME, &hash)?,
    })
}

fn parse_sha512_pbkdf2(rest: &str) -> Result<Kind, HashError> {
    const SCHEME: &str = "sha512-pbkdf2 ($7$)";
    let [iterations, salt, hash] = fields(rest, SCHEME, "$7$ITERATIONS$SALT$HASH")?;
    let iterations = match iterations.parse::<u32>() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(malformed(
                SCHEME,
                "the iteration count is not a positive number",
            ))
        }
    };
    Ok(Kind::Sha512Pbkdf2 {
        iterations,
        salt: decode(SCHEME, "salt", &salt)?,
        hash: digest64(SCHEME, &hash)?,
    })
}

/// `[v=VERSION$]m=M,t=T,p=P$SALT$HASH`, as libargon2 writes and reads it
/// (no `v=` means version 0x10, as libargon2 reads it).
fn parse_argon2id(rest: &str) -> Result<Kind, HashError> {
    const SCHEME: &str = "argon2id";
    const LAYOUT: &str = "$argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH";
    let (version, rest) = match rest.strip_prefix("v=") {
        Some(after) => {
            let (number, rest) = after
                .split_once('$')
                .ok_or_else(|| malformed(SCHEME, &format!("want {LAYOUT}")))?;
            let version = match number {
                "19" => Version::V0x13,
                "16" => Version::V0x10,
                _ => return Err(malformed(SCHEME, "the version is not 19 (or 16)")),
            };
            (version, rest)
        }
        None => (Version::V0x10, rest),
    };
    let [costs, salt, hash] = fields(rest, SCHEME, LAYOUT)?;
    let number = |name: &str, text: Option<&str>| -> Result<u32, HashError> {
        text.and_then(|t| t.strip_prefix(name))
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                malformed(
                    SCHEME,
                    "want m=KIB,t=PASSES,p=LANES (numbers, in that order)",
                )
            })
    };
    let mut costs = costs.split(',');
    let m = number("m=", costs.next())?;
    let t = number("t=", costs.next())?;
    let p = number("p=", costs.next())?;
    if costs.next().is_some() {
        return Err(malformed(SCHEME, "unexpected parameters after m, t and p"));
    }
    let params = Params::new(m, t, p, None).map_err(|e| malformed(SCHEME, &e.to_string()))?;
    let salt = decode(SCHEME, "salt", &salt)?;
    let hash = decode(SCHEME, "hash", &hash)?;
    if salt.len() < argon2::MIN_SALT_LEN {
        return Err(malformed(SCHEME, "the salt is shorter than 8 bytes"));
    }
    if hash.len() < Params::MIN_OUTPUT_LEN {
        return Err(malformed(SCHEME, "the hash is shorter than 4 bytes"));
    }
    Ok(Kind::Argon2id {
        version,
        params,
        salt,
        hash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::vectors::*;

    #[test]
    fn hashing_with_mosquittos_salt_writes_mosquittos_text() {
        for line in MOSQUITTO_FILE.lines() {
            let (user, text) = line.split_once(':').unwrap();
            let parsed = PasswordHash::parse(text).unwrap();
            let (Kind::Sha512 { salt, .. } | Kind::Sha512Pbkdf2 { salt, .. }) = &parsed.kind else {
                panic!("{user}: not $6$ or $7$");
            };
            let password = match user {
                "alice" | "bob" => "correct horse",
                _ => "pässwörd",
            };
            let made = PasswordHash::with_salt(password.as_bytes(), parsed.scheme(), salt).unwrap();
            assert_eq!(made.to_string(), text, "{user}");
        }
    }

    #[test]
    fn libargon2_hashes_verify_including_64_byte_salts_and_version_16() {
        for (password, text) in LIBARGON2 {
            let hash = PasswordHash::parse(text).unwrap();
            assert!(hash.verify(password.as_bytes()), "{text}");
            assert!(!hash.verify(b"pencil"), "{text}");
            assert_eq!(hash.to_string(), text);
        }
        let made = PasswordHash::with_salt(
            "pässwörd".as_bytes(),
            Scheme::Argon2id {
                memory_kib: 4096,
                passes: 3,
                lanes: 1,
            },
            b"somesaltsomesalt",
        )
        .unwrap();
        assert_eq!(made.to_string(), LIBARGON2[0].1);
    }

    #[test]
    fn argon2id_is_the_default_and_round_trips_at_its_real_parameters() {
        let hash = PasswordHash::new(b"correct horse", Scheme::default()).unwrap();
        let text = hash.to_string();
        assert!(
            text.starts_with("$argon2id$v=19$m=47104,t=1,p=1$"),
            "{text}"
        );
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(parsed, hash);
        assert!(parsed.verify(b"correct horse"));
        assert!(!parsed.verify(b"correct horsf"));
    }

    #[test]
    fn malformed_hashes_say_what_is_wrong() {
        for (text, problem) in [
            ("secret", "a plain-text password must be hashed first"),
            ("$5$abc$def", "not a password hash"),
            ("$6$c2FsdA==", "want $6$SALT$HASH"),
            ("$6$!!!!$AAAA", "the salt is not base64"),
            ("$6$$AAAA", "the salt is empty"),
            ("$6$c2FsdA==$c2FsdA==", "the hash is not 64 bytes"),
            ("$7$0$c2FsdA==$c2FsdA==", "not a positive number"),
            ("$7$ten$c2FsdA==$c2FsdA==", "not a positive number"),
            ("$7$101$c2FsdA==", "want $7$ITERATIONS$SALT$HASH"),
            (
                "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAA",
                "only the argon2id variant",
            ),
            (
                "$argon2id$v=18$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAA",
                "the version is not 19",
            ),
            (
                "$argon2id$v=19$t=1,m=64,p=1$c2FsdHNhbHQ$AAAAAAAA",
                "in that order",
            ),
            ("$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHQ$AAAAAAAA", "memory"),
            (
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$AAAAAAAA",
                "the salt is shorter than 8 bytes",
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAA",
                "the hash is shorter than 4 bytes",
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1,x=2$c2FsdHNhbHQ$AAAAAAAA",
                "after m, t and p",
            ),
            (
                "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
                "want $argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH",
            ),
        ] {
            let message = PasswordHash::parse(text).unwrap_err().to_string();
            assert!(message.contains(problem), "{text:?}: {message}");
        }
        assert!(PasswordHash::looks_hashed("$argon2id$…"));
        assert!(!PasswordHash::looks_hashed("correct horse"));
    }

    #[test]
    fn bad_parameters_are_errors_not_panics() {
        for scheme in [
            Scheme::Sha512Pbkdf2 { iterations: 0 },
            Scheme::Argon2id {
                memory_kib: 8,
                passes: 1,
                lanes: 4,
            },
        ] {
            let error = PasswordHash::new(b"x", scheme).unwrap_err();
            assert!(matches!(error, HashError::Parameters { .. }), "{error}");
        }
        assert_eq!(Scheme::from_name("argon2id"), Some(Scheme::default()));
        assert_eq!(
            Scheme::from_name("sha512-pbkdf2"),
            Some(Scheme::SHA512_PBKDF2)
        );
        assert_eq!(Scheme::from_name("sha512"), Some(Scheme::Sha512));
        assert_eq!(Scheme::from_name("md5"), None);
    }
}
