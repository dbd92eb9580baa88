//! Broker configuration: a TOML file (see `pigeon.example.toml` at the
//! repository root, which lists every key with its default), overridden by
//! command-line flags. Every key has a safe default, so an empty file, or
//! none, gives a working loopback broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Everything the broker can be told.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where MQTT over TCP listens.
    pub listen: SocketAddr,
    /// Directory for durable state (used from the durable store on).
    pub data_dir: PathBuf,
    /// Whether clients without a user name may connect.
    pub allow_anonymous: bool,
    /// Seconds between `$SYS` updates; 0 turns them off.
    pub sys_interval: u64,
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    pub queue_qos0: bool,
    /// Limits, each with a safe default.
    pub limits: Limits,
}

/// Limits on what clients may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Largest packet accepted, in bytes (announced to v5 clients).
    pub max_packet_size: u32,
    /// QoS 1/2 messages in flight to one client, and the Receive Maximum
    /// announced to it.
    pub max_inflight: u16,
    /// Messages queued for one session beyond those in flight.
    pub max_queued_messages: usize,
    /// Payload bytes queued for one session.
    pub max_queued_bytes: usize,
    /// Levels in a topic name or filter.
    pub max_topic_levels: usize,
    /// Subscriptions one client may hold.
    pub max_subscriptions: usize,
    /// Length of a client identifier, in bytes.
    pub max_client_id_len: usize,
    /// Longest keep-alive accepted, in seconds; longer requests get a v5
    /// Server Keep Alive of this value, v3 clients are refused.
    pub max_keep_alive: u16,
    /// Topic aliases a v5 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// Longest Session Expiry Interval honoured, in seconds.
    pub max_session_expiry: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            data_dir: PathBuf::from("pigeon-data"),
            allow_anonymous: true,
            sys_interval: 10,
            queue_qos0: false,
            limits: Limits::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_packet_size: 1024 * 1024,
            max_inflight: 100,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_topic_levels: 200,
            max_subscriptions: 1000,
            max_client_id_len: 256,
            max_keep_alive: 65_535,
            topic_alias_maximum: 64,
            max_session_expiry: u32::MAX,
        }
    }
}

/// A configuration value that cannot be used, with what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config: {key} = {value}: {allowed}")]
pub struct ConfigError {
    /// The key, as written in the file.
    pub key: String,
    /// The offending value.
    pub value: String,
    /// What would be accepted.
    pub allowed: String,
}

impl Config {
    /// Parses a TOML file's text and checks every value.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError {
            key: "file".into(),
            value: e.message().trim().into(),
            allowed: toml_position(text, e.span()),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        check("limits.max_connections", l.max_connections, 1, usize::MAX)?;
        check("limits.max_packet_size", l.max_packet_size, 16, 268_435_460)?;
        check("limits.max_inflight", l.max_inflight, 1, u16::MAX)?;
        check("limits.max_topic_levels", l.max_topic_levels, 1, 65_535)?;
        check("limits.max_client_id_len", l.max_client_id_len, 1, 65_535)?;
        check("limits.max_keep_alive", l.max_keep_alive, 1, u16::MAX)?;
        Ok(())
    }

    /// `sys_interval` as a duration, or `None` when `$SYS` is off.
    pub fn sys_interval(&self) -> Option<Duration> {
        (self.sys_interval > 0).then(|| Duration::from_secs(self.sys_interval))
    }
}

fn check<T: PartialOrd + std::fmt::Display>(
    key: &str,
    v: T,
    min: T,
    max: T,
) -> Result<(), ConfigError> {
    if v < min || v > max {
        return Err(ConfigError {
            key: key.into(),
            value: v.to_string(),
            allowed: format!("must be between {min} and {max}"),
        });
    }
    Ok(())
}

fn toml_position(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "fix the file's syntax".into();
    };
    let line = text[..span.start.min(text.len())].lines().count().max(1);
    format!("see line {line}; every key is listed in pigeon.example.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_the_loopback_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], 1883)));
        assert_eq!(c.limits.max_inflight, 100);
    }

    #[test]
    fn bad_value_names_the_key_the_value_and_what_is_allowed() {
        let err = Config::from_toml("[limits]\nmax_inflight = 0\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config: limits.max_inflight = 0: must be between 1 and 65535"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_line() {
        let err = Config::from_toml("listen = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("lisen") && text.contains("line 2"), "{text}");
    }
}
