//! mosquitto-compatible password files: `USER:HASH` lines, checked when a
//! client logs in with a user name and password, and edited by
//! `pigeon passwd`.
//!
//! ## The hashes
//!
//! | Prefix | `-H` name | Layout |
//! |---|---|---|
//! | `$argon2id$` | `argon2id` | PHC string: `$argon2id$v=19$m=KIB,t=PASSES,p=LANES$SALT$HASH` (base64 without padding); mosquitto ≥ 2.1 |
//! | `$7$` | `sha512-pbkdf2` | `$7$ITERATIONS$SALT$HASH`, HASH = PBKDF2-HMAC-SHA512, 64 bytes; mosquitto ≥ 2.0 |
//! | `$6$` | `sha512` | `$6$SALT$HASH`, HASH = SHA-512(password ‖ salt); mosquitto ≤ 1.6's default |
//!
//! (`$6$` and `$7$` use padded standard base64, as mosquitto writes them;
//! both paddings are accepted when reading.)
//!
//! ## The parts
//!
//! - `hash`: [`PasswordHash`], one hash, parsed. One that exists is well
//!   formed (parse, don't validate); [`PasswordHash::verify`] recomputes it
//!   from a password and compares in constant time (`subtle`). [`Scheme`]
//!   says how a new password is hashed: argon2id by default, `$7$` for
//!   files that mosquitto 2.0 must read, `$6$` only on request.
//! - `file`: [`PasswordFile`], the file as its lines. Comments, blank
//!   lines and users nobody changed are written back exactly as read; a
//!   changed user keeps its place, a new one goes at the end.
//!   [`write_secret_file`] replaces the file atomically: a new file is
//!   private (0600), an old one keeps its mode and owner so that the
//!   broker can still read it.
//!
//! The argon2id string is parsed here rather than by the `password-hash`
//! crate, which refuses salts over 48 bytes: mosquitto 2.1 writes 64-byte
//! salts. The `argon2` crate computes the function itself.
//!
//! ## Cost
//!
//! Verifying an argon2id hash at the default parameters takes 46 MiB and
//! tens of milliseconds; `$7$` takes as long as its iterations say. A
//! caller on an async runtime should verify on a blocking thread.

mod file;
mod hash;

pub use file::{
    check_user_name, write_secret_file, LineProblem, PasswordFile, PasswordFileError, UserNameError,
};
pub use hash::{
    HashError, PasswordHash, Scheme, ARGON2_LANES, ARGON2_MEMORY_KIB, ARGON2_PASSES,
    PBKDF2_ITERATIONS,
};

/// Known hashes, shared by the tests of both parts.
#[cfg(test)]
mod vectors {
    use super::Scheme;

    /// Made by Debian's mosquitto_passwd 2.0.11:
    /// `mosquitto_passwd -c -H sha512 -b FILE alice 'correct horse'`,
    /// `mosquitto_passwd -H sha512-pbkdf2 -b FILE bob 'correct horse'`,
    /// `mosquitto_passwd -H sha512-pbkdf2 -b FILE carol 'pässwörd'`,
    /// `mosquitto_passwd -H sha512 -b FILE dave 'pässwörd'`.
    pub const MOSQUITTO_FILE: &str = "\
alice:$6$rchWUPcMtv3CWxcZ$o56H1RoC1UBLgrDdTufoBa+D4lksVxJZ1Xr8KV0ctO22cuJuU2Fo/G60TnLOZcszUyLTXqb3SuaF2c5lL0OCfA==
bob:$7$101$RMrQG/bZBpEDkEEl$feCvI/RciBkIZFFCwZz3HvbxPAWjJeQ7aqpzhQovErel1qbh3RBBbuWcumzxk6RCGv0TzvljV+IlwbouK5j55A==
carol:$7$101$ZDw7lKgjK0SUnjEz$sdH1YtXIabQUoAbSlDSoHnLf07YkEm2GMAIwKa4LbyFkq1bU3jmlwVOLJpbFeh/xhYKKnHi702Ppv90hSK07kw==
dave:$6$ilANmrvfmEc4vrq/$w1apLFguuHGrH4KpI8jUvk4YZjmndCVu6vsPIrSJRw9AmGMAReV+mTGcMhfG7ii82YSz5pPmg/5O+lYhfo9rSQ==
";

    /// Made by libargon2's reference command (Debian's `argon2`, the
    /// library mosquitto 2.1 uses), e.g.
    /// `echo -n 'pässwörd' | argon2 somesaltsomesalt -id -t 3 -m 12 -p 1 -l 32 -e`.
    pub const LIBARGON2: [(&str, &str); 3] = [
        (
            // -t 3 -m 12 -p 1 -l 32, salt "somesaltsomesalt"
            "pässwörd",
            "$argon2id$v=19$m=4096,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$Rum/C2f2XFtumOCZC4E8Ryq77qXNWSDQ3OxCoDtaKhI",
        ),
        (
            // -t 2 -m 10 -p 2 -l 64, a 64-byte salt as mosquitto 2.1 writes
            // ("0123456789abcdef" four times)
            "correct horse",
            "$argon2id$v=19$m=1024,t=2,p=2$MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZg$/RCIyZQ9WtUI/Z3EEx0dkox0hMtr6RWa/7kwk7Iz3xEwg1Mboi3uKz9UZ7YPpmk5tHCSnvUPjH9B66BZOEyYLQ",
        ),
        (
            // -t 2 -m 10 -p 1 -l 32 -v 10: the old version 0x10
            "correct horse",
            "$argon2id$v=16$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$9Ky/XGXDbhT/R9Wqh1j6QTuvaSXRHABWbCQiNFuziVg",
        ),
    ];

    /// Cheap argon2id parameters, so that tests run fast in debug builds.
    pub const CHEAP: Scheme = Scheme::Argon2id {
        memory_kib: 64,
        passes: 1,
        lanes: 1,
    };
}
