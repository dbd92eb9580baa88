//! Topic names, topic filters and shared subscriptions (MQTT 5.0 §4.7, §4.8).
//!
//! Each type is checked once, when it is built, and is valid for as long as
//! it exists:
//!
//! * [`TopicName`]: what a PUBLISH is sent to. At least one character, no
//!   wildcards.
//! * [`TopicFilter`]: what a subscription asks for. It may hold `+` and `#`
//!   as whole levels, and [`TopicFilter::matches`] decides whether it selects
//!   a topic name.
//! * [`Subscription`]: a filter as SUBSCRIBE and UNSUBSCRIBE carry it: either
//!   a plain [`TopicFilter`] or a [`SharedFilter`] written
//!   `$share/{ShareName}/{filter}`. Parsing does not depend on the protocol
//!   version; whether MQTT 3.1.1 clients may use `$share` is broker policy.
//!
//! All of them wrap an [`MqttStr`](crate::string::MqttStr), so a topic
//! decoded from a packet shares the packet's buffer instead of being copied.
//! Checking and matching work on bytes: `/`, `+`, `#` and `$` are ASCII, and
//! UTF-8 never uses a byte below 0x80 inside a multi-byte character. A byte
//! comparison is therefore a character comparison that never normalises
//! anything (MQTT-4.7.3-4).
//!
//! The specification puts no limit on the number of levels beyond the
//! 65,535-byte string limit. A broker should set one (mosquitto uses 200), so
//! every type has a `with_max_levels` constructor and a `check_levels` method
//! for values decoded before the limit was known. Nothing here recurses over
//! levels: a 65,535-byte topic made only of `/` is one loop.
//!
//! MQTT 3.1.1 and 5.0 number the wildcard rules differently. No wildcard in a
//! topic name is MQTT-4.7.1-1 in 3.1.1 and MQTT-4.7.0-1 in 5.0; `#` as the
//! whole last level is MQTT-4.7.1-2 in 3.1.1 and MQTT-4.7.1-1 in 5.0; `+` as a
//! whole level is MQTT-4.7.1-3 in 3.1.1 and MQTT-4.7.1-2 in 5.0. Comments
//! here cite both.

use crate::string::StringError;

/// Why a string is not a topic name, topic filter or shared subscription.
///
/// All of these are malformed input from whoever sent the string. For a
/// peer, a bad topic name maps to reason code 0x90 (Topic Name invalid) and a
/// bad filter to 0x8F (Topic Filter invalid).
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopicError {
    /// A zero-length topic name or filter (MQTT-4.7.3-1).
    #[error("topic must be at least one character long")]
    Empty,
    /// A `+` or `#` in a topic name (MQTT-3.3.2-2).
    #[error("topic name must not contain the wildcard characters '+' or '#'")]
    WildcardInTopicName,
    /// A `#` that is not the whole last level of a filter.
    #[error("'#' must be the whole last level of a topic filter")]
    MisplacedMultiLevelWildcard,
    /// A `+` that does not occupy a whole level of a filter.
    #[error("'+' must occupy a whole level of a topic filter")]
    MisplacedSingleLevelWildcard,
    /// More levels than the configured limit.
    #[error("topic has more than {max} levels")]
    TooManyLevels {
        /// The limit that was exceeded.
        max: usize,
    },
    /// Not a valid MQTT UTF-8 string (MQTT-4.7.3-2, MQTT-4.7.3-3).
    #[error("topic is not a valid MQTT string: {0}")]
    InvalidString(#[from] StringError),
    /// A ShareName that is empty or contains `/`, `+` or `#` (MQTT-4.8.2-1,
    /// MQTT-4.8.2-2).
    #[error("ShareName must be at least one character and must not contain '/', '+' or '#'")]
    InvalidShareName,
    /// A ShareName that is not followed by `/` and a topic filter
    /// (MQTT-4.8.2-2).
    #[error("shared subscription must have '/' and a topic filter after the ShareName")]
    MissingSharedFilter,
}

/// `TryFrom<&str>`, `TryFrom<String>`, `FromStr` and serde as a string, for
/// a type built from an `MqttStr` by `$ty::$parse`. Deserializing runs the
/// same checks, so a stored topic cannot smuggle in an invalid value.
macro_rules! from_text {
    ($ty:ident, $parse:ident) => {
        impl TryFrom<&str> for $ty {
            type Error = $crate::topic::TopicError;
            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::$parse($crate::string::MqttStr::try_from(s)?)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::topic::TopicError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::$parse($crate::string::MqttStr::try_from(s)?)
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::topic::TopicError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_from(s)
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::try_from(s).map_err(::serde::de::Error::custom)
            }
        }
    };
}

/// The accessors and string impls [`TopicName`] and [`TopicFilter`] share.
/// Both are a tuple struct around an `MqttStr` with a checking `new`.
macro_rules! topic_string {
    ($ty:ident) => {
        impl $ty {
            /// Like `new`, but also rejects more than `max_levels` levels.
            pub fn with_max_levels(
                value: $crate::string::MqttStr,
                max_levels: usize,
            ) -> Result<Self, $crate::topic::TopicError> {
                let topic = Self::new(value)?;
                topic.check_levels(max_levels)?;
                Ok(topic)
            }

            /// The topic as `&str`.
            pub fn as_str(&self) -> &str {
                self.0.as_str()
            }

            /// The underlying string, sharing the buffer it was decoded from.
            pub fn as_mqtt_str(&self) -> &$crate::string::MqttStr {
                &self.0
            }

            /// Gives back the underlying string.
            pub fn into_inner(self) -> $crate::string::MqttStr {
                self.0
            }

            /// Whether the first character is `$`. Such topics are the
            /// server's (`$SYS/…`), and a filter that starts with a wildcard
            /// never matches them (MQTT-4.7.2-1).
            pub fn is_system(&self) -> bool {
                self.0.as_bytes().first() == Some(&b'$')
            }

            /// The levels between `/` separators, in order, including empty
            /// ones: `a//b/` has the four levels `a`, ``, `b`, ``.
            pub fn levels(&self) -> impl Iterator<Item = &str> + '_ {
                self.as_str().split('/')
            }

            /// The number of levels: one more than the number of `/`.
            pub fn level_count(&self) -> usize {
                $crate::topic::level_count(self.0.as_bytes())
            }

            /// [`TopicError::TooManyLevels`] if there are more than
            /// `max_levels` levels; for values decoded before the broker's
            /// limit was applied.
            pub fn check_levels(&self, max_levels: usize) -> Result<(), $crate::topic::TopicError> {
                if self.level_count() > max_levels {
                    return Err($crate::topic::TopicError::TooManyLevels { max: max_levels });
                }
                Ok(())
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        // Sound because the derived `Eq`, `Ord` and `Hash` of the wrapped
        // `MqttStr` agree with `str`'s, so maps keyed by topic can be
        // searched with a `&str`.
        impl ::std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        from_text!($ty, new);
    };
}

mod filter;
mod name;
mod shared;

pub use filter::TopicFilter;
pub use name::TopicName;
pub use shared::{SharedFilter, Subscription};

/// Levels in a topic or filter; a count of bytes rather than a walk over
/// levels, so its cost does not depend on how the levels are laid out.
fn level_count(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'/').count() + 1
}
