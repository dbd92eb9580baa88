//! `MqttStr`: a UTF-8 Encoded String as MQTT defines it (§1.5.4), kept as a
//! slice of the buffer it was decoded from.
//!
//! Decoding a PUBLISH must not allocate, so strings are not `String`s: they
//! are `Bytes` that have been checked once to be well-formed UTF-8 without
//! U+0000 (MQTT-1.5.4-1, MQTT-1.5.4-2). Rust's UTF-8 check already rejects
//! surrogates, overlong forms and code points above U+10FFFF. A BOM is an
//! ordinary character and is kept (MQTT-1.5.4-3).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;
use bytestring::ByteString;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest string the two-byte length prefix can describe.
pub const MAX_STRING_LEN: usize = 65_535;

/// Why bytes are not an MQTT UTF-8 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StringError {
    /// Not well-formed UTF-8 (includes surrogates and overlong forms).
    #[error("string is not well-formed UTF-8")]
    InvalidUtf8,
    /// Contains U+0000.
    #[error("string contains U+0000")]
    NullCharacter,
    /// Longer than 65,535 bytes.
    #[error("string is longer than 65535 bytes")]
    TooLong,
}

/// A validated MQTT UTF-8 string that shares the buffer it came from.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct MqttStr(ByteString);

impl MqttStr {
    /// The empty string.
    pub const fn new() -> Self {
        MqttStr(ByteString::from_static(""))
    }

    /// Validates `bytes` as an MQTT string without copying them:
    /// MQTT-1.5.4-1 (well-formed UTF-8, so no surrogates or overlong forms),
    /// MQTT-1.5.4-2 (no U+0000) and the two-byte length prefix. The UTF-8
    /// check happens once, here; `as_str` is free afterwards.
    pub fn from_bytes(bytes: Bytes) -> Result<Self, StringError> {
        if bytes.len() > MAX_STRING_LEN {
            return Err(StringError::TooLong);
        }
        let s = ByteString::try_from(bytes).map_err(|_| StringError::InvalidUtf8)?;
        if contains_any(s.as_bytes(), &[0]) {
            return Err(StringError::NullCharacter);
        }
        Ok(MqttStr(s))
    }

    /// A string from a `'static` literal (validated; use for constants).
    pub fn from_static(s: &'static str) -> Result<Self, StringError> {
        Self::from_bytes(Bytes::from_static(s.as_bytes()))
    }

    /// The string as `&str`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The underlying bytes (shared, not copied).
    pub fn as_bytes(&self) -> &Bytes {
        self.0.as_bytes()
    }

    /// Consumes the string, giving back its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0.into_bytes()
    }
}

/// Whether any byte of `bytes` is one of `needles`, eight bytes at a time.
/// It runs on every topic received (U+0000 here, wildcards in
/// [`crate::topic`]), where a byte-by-byte loop was the largest single cost
/// of decoding a small PUBLISH.
pub(crate) fn contains_any(bytes: &[u8], needles: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Non-zero exactly when some byte of `word` is zero.
    let has_zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        if needles
            .iter()
            .any(|&n| has_zero_byte(word ^ (ONES * u64::from(n))))
        {
            return true;
        }
    }
    chunks.remainder().iter().any(|b| needles.contains(b))
}

impl TryFrom<&str> for MqttStr {
    type Error = StringError;
    fn try_from(s: &str) -> Result<Self, StringError> {
        Self::from_bytes(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl TryFrom<String> for MqttStr {
    type Error = StringError;
    fn try_from(s: String) -> Result<Self, StringError> {
        Self::from_bytes(Bytes::from(s))
    }
}

impl Deref for MqttStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MqttStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for MqttStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must agree with `str`'s hash for `Borrow<str>` lookups.
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for MqttStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for MqttStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for MqttStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MqttStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MqttStr::try_from(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(b: &'static [u8]) -> Result<MqttStr, StringError> {
        MqttStr::from_bytes(Bytes::from_static(b))
    }

    #[test]
    fn surrogates_and_overlong_forms_are_rejected() {
        // MQTT-1.5.4-1; catalogue U1, U2, U4, U5.
        for bad in [
            &b"\xC0\xAF"[..],
            b"\xE0\x80\xAF",
            b"\xED\xA0\x80",
            b"a\xE2\x82",
            b"\xF4\x90\x80\x80",
            b"\xF5",
            b"\xFF",
        ] {
            assert_eq!(from(bad), Err(StringError::InvalidUtf8), "{bad:?}");
        }
    }

    #[test]
    fn null_character_is_rejected() {
        // MQTT-1.5.4-2; catalogue U3.
        assert_eq!(from(b"a\0b"), Err(StringError::NullCharacter));
    }

    #[test]
    fn byte_order_mark_is_kept_not_stripped() {
        // MQTT-1.5.4-3; catalogue U6.
        let s = from(b"\xEF\xBB\xBFtopic").expect("BOM is valid");
        assert_eq!(s.as_str(), "\u{FEFF}topic");
        assert_ne!(s.as_str(), "topic");
    }

    #[test]
    fn contains_any_finds_a_byte_at_every_position() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b'#';
                assert!(contains_any(&bytes, b"+#"), "len {len} at {at}");
                assert!(!contains_any(&bytes, &[0]), "len {len} at {at}");
            }
            assert!(!contains_any(&vec![0x80u8; len], &[0, b'+']));
        }
    }

    #[test]
    fn strings_over_65535_bytes_are_rejected() {
        let long = "a".repeat(MAX_STRING_LEN + 1);
        assert_eq!(MqttStr::try_from(long.as_str()), Err(StringError::TooLong));
        assert!(MqttStr::try_from(&long[1..]).is_ok());
    }
}
