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
    /// Directory for durable state.
    pub data_dir: PathBuf,
    /// When acknowledged state reaches the disk.
    pub durability: Durability,
    /// With `durability = "batch"`: longest time between fsyncs, in ms.
    pub batch_interval_ms: u64,
    /// Memory for the store's page cache, in MiB.
    pub store_cache_mb: u64,
    /// Whether clients without a user name may connect, on every listener
    /// that does not say otherwise. Unset (the default): on loopback
    /// listeners only, as mosquitto 2 does.
    pub allow_anonymous: Option<bool>,
    /// Password file in mosquitto's format (`user:hash` lines; argon2id,
    /// `$7$` or `$6$`, as `pigeon passwd` or mosquitto_passwd write them).
    /// Empty: no passwords are checked.
    pub password_file: PathBuf,
    /// Access control list in mosquitto's `acl_file` syntax (`user`,
    /// `topic [read|write|readwrite|deny] FILTER`, `pattern` with `%u` and
    /// `%c`). Empty: every client may publish and subscribe to anything
    /// but `$SYS` writes. A file that does not parse stops the start.
    pub acl_file: PathBuf,
    /// What happens to an MQTT 3.x PUBLISH the ACL denies (3.x has no
    /// reason codes): `drop` acknowledges and discards it, as mosquitto
    /// does; `disconnect` closes the connection. MQTT 5 clients get 0x87.
    pub v3_denied_publish: DeniedPublish,
    /// A client id whose session was made by a user (with a user name)
    /// may be used only by that user: another user, or an anonymous
    /// client, gets CONNACK 0x87 instead of taking the session over or
    /// discarding it.
    pub protect_client_ids: bool,
    /// File of SCRAM-SHA-256 users for MQTT 5 enhanced authentication
    /// (`USER:SCRAM-SHA-256$…` lines, RFC 5803); empty: SCRAM is not offered.
    pub scram_users_file: PathBuf,
    /// Seconds between `$SYS` updates; 0 turns them off.
    pub sys_interval: u64,
    /// Whether QoS 0 messages are queued for offline persistent sessions.
    pub queue_qos0: bool,
    /// Limits, each with a safe default.
    pub limits: Limits,
    /// MQTT features that can be turned off; MQTT 5 clients are told in
    /// CONNACK, and what is off is refused.
    pub features: Features,
    /// Listeners besides `listen`: MQTT or WebSocket, with or without TLS
    /// (`[[listeners]]` tables).
    pub listeners: Vec<ListenerConfig>,
}

/// What happens to a 3.x PUBLISH the ACL denies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeniedPublish {
    /// Acknowledged and discarded (mosquitto's behaviour).
    #[default]
    Drop,
    /// The connection is closed.
    Disconnect,
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// MQTT over TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT over WebSocket (or WSS), at `path`, subprotocol `mqtt`.
    Websocket,
}

/// One `[[listeners]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Address and port, e.g. "0.0.0.0:8883".
    pub address: SocketAddr,
    /// `mqtt` (the default) or `websocket`.
    #[serde(default)]
    pub protocol: ListenerProtocol,
    /// The WebSocket request path.
    #[serde(default = "mqtt_path")]
    pub path: String,
    /// WebSocket: the `Origin` values browsers may connect from (e.g.
    /// "https://app.example.com"); a request with another Origin gets 403.
    /// Empty (the default): any. Clients that send no Origin (not
    /// browsers) are not affected.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// PEM certificate chain: TLS on this listener (with `keyfile`).
    #[serde(default)]
    pub certfile: Option<PathBuf>,
    /// PEM private key for `certfile`.
    #[serde(default)]
    pub keyfile: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to.
    #[serde(default)]
    pub cafile: Option<PathBuf>,
    /// Refuse clients without a certificate from `cafile`.
    #[serde(default)]
    pub require_certificate: bool,
    /// Whether clients without a user name may connect here (overrides
    /// the global `allow_anonymous`).
    #[serde(default)]
    pub allow_anonymous: Option<bool>,
    /// Password file for this listener instead of the global one.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// ACL file for this listener instead of the global one.
    #[serde(default)]
    pub acl_file: Option<PathBuf>,
    /// With `require_certificate`: the client certificate's identity (its
    /// Common Name, else its first DNS or e-mail Subject Alternative Name)
    /// is the user name, and CONNECT's user name and password are not used.
    #[serde(default)]
    pub use_identity_as_username: bool,
    /// Connections start with a PROXY protocol v1 or v2 header (HAProxy,
    /// nginx): the client's address is taken from it. Connections without
    /// one are closed.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Concurrent connections on this listener (besides the broker-wide
    /// `limits.max_connections`).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// New connections per second this listener accepts (default:
    /// `limits.connection_rate`).
    #[serde(default)]
    pub connection_rate: Option<u32>,
    /// New connections per second from one IP address (default:
    /// `limits.connection_rate_per_source`).
    #[serde(default)]
    pub connection_rate_per_source: Option<u32>,
    /// A default listener (not from the file): when its port is taken the
    /// broker starts without it and says so.
    #[serde(skip)]
    pub optional: bool,
}

fn mqtt_path() -> String {
    "/mqtt".into()
}

impl ListenerConfig {
    /// The WebSocket listener a broker started without a configuration
    /// opens beside MQTT: 127.0.0.1:8083, path /mqtt, optional.
    pub fn default_websocket() -> ListenerConfig {
        ListenerConfig {
            address: SocketAddr::from(([127, 0, 0, 1], 8083)),
            protocol: ListenerProtocol::Websocket,
            path: mqtt_path(),
            allowed_origins: Vec::new(),
            certfile: None,
            keyfile: None,
            cafile: None,
            require_certificate: false,
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
            use_identity_as_username: false,
            proxy_protocol: false,
            max_connections: None,
            connection_rate: None,
            connection_rate_per_source: None,
            optional: true,
        }
    }
}

impl ListenerConfig {
    /// Whether the listener speaks TLS.
    pub fn tls(&self) -> bool {
        self.certfile.is_some()
    }
}

/// MQTT features the broker offers. Each is announced to MQTT 5 clients in
/// CONNACK exactly as configured, and enforced.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    /// Highest QoS accepted and granted (0, 1 or 2).
    pub maximum_qos: u8,
    /// Retained messages.
    pub retain: bool,
    /// Subscriptions with `+` and `#`.
    pub wildcard_subscriptions: bool,
    /// Subscription Identifiers (MQTT 5).
    pub subscription_identifiers: bool,
    /// Shared subscriptions, `$share/GROUP/FILTER`.
    pub shared_subscriptions: bool,
    /// How a shared subscription's group picks the member for a message.
    pub shared_subscription_strategy: SharedStrategy,
    /// The broker names topics by Topic Alias towards MQTT 5 clients that
    /// accept aliases.
    pub outbound_topic_aliases: bool,
    /// Response Information sent to a client that asks for it (Request
    /// Response Information): this prefix, then the client id. Empty: none.
    pub response_information: String,
    /// Messages that say their payload is UTF-8 (Payload Format Indicator
    /// 1) are checked, and refused with 0x99 when it is not.
    pub validate_utf8_payload: bool,
}

/// How a shared subscription's group picks the member for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Each member in turn.
    RoundRobin,
    /// A member at random.
    Random,
    /// The same member for all messages of one publisher, while it can
    /// take them.
    Sticky,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            maximum_qos: 2,
            retain: true,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            shared_subscriptions: true,
            shared_subscription_strategy: SharedStrategy::RoundRobin,
            outbound_topic_aliases: true,
            response_information: "response/".into(),
            validate_utf8_payload: true,
        }
    }
}

/// When acknowledged state reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledged only once fsynced (group commit).
    Sync,
    /// fsynced every `batch_interval_ms`; a crash can lose that window.
    Batch,
    /// Nothing on disk.
    Memory,
}

/// Limits on what clients may use.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Concurrent connections.
    pub max_connections: usize,
    /// Largest packet accepted, in bytes (announced to v5 clients).
    pub max_packet_size: u32,
    /// QoS 1/2 messages in flight to one client (fewer if the client's
    /// Receive Maximum is lower).
    pub max_inflight: u16,
    /// QoS 1/2 messages one client may have unacknowledged towards the
    /// broker: the Receive Maximum announced to MQTT 5 clients, whose
    /// excess is a protocol error (0x93).
    pub receive_maximum: u16,
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
    /// How long a client refused for its credentials waits for its CONNACK,
    /// in milliseconds (slows password guessing; only that connection's
    /// task waits).
    pub auth_failure_delay_ms: u64,
    /// How long an authentication check (a password hash, or a slow
    /// custom authenticator) may take, in milliseconds; after that the
    /// client is refused with 0x88 Server unavailable (3.1.1: 3).
    pub auth_timeout_ms: u64,
    /// How long a client may take over the PROXY header, TLS and
    /// WebSocket handshakes, in milliseconds; then it is closed.
    pub handshake_timeout_ms: u64,
    /// New connections per second one listener accepts; 0 for no limit.
    /// Connections over it are closed at once.
    pub connection_rate: u32,
    /// New connections per second from one IP address, per listener; 0 for
    /// no limit.
    pub connection_rate_per_source: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            data_dir: PathBuf::from("pigeon-data"),
            durability: Durability::Sync,
            batch_interval_ms: 100,
            store_cache_mb: 64,
            allow_anonymous: None,
            password_file: PathBuf::new(),
            acl_file: PathBuf::new(),
            v3_denied_publish: DeniedPublish::Drop,
            protect_client_ids: true,
            scram_users_file: PathBuf::new(),
            sys_interval: 10,
            queue_qos0: false,
            limits: Limits::default(),
            features: Features::default(),
            listeners: Vec::new(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_packet_size: 1024 * 1024,
            max_inflight: 100,
            receive_maximum: 32,
            max_queued_messages: 1000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_topic_levels: 200,
            max_subscriptions: 1000,
            max_client_id_len: 256,
            max_keep_alive: 65_535,
            topic_alias_maximum: 64,
            max_session_expiry: u32::MAX,
            auth_failure_delay_ms: 500,
            auth_timeout_ms: 10_000,
            handshake_timeout_ms: 10_000,
            connection_rate: 0,
            connection_rate_per_source: 0,
        }
    }
}

/// What is wrong with a configuration, said so it can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value out of range.
    #[error("config: {key} = {value}: {allowed}")]
    Value {
        /// The key, as written in the file.
        key: String,
        /// The offending value.
        value: String,
        /// What would be accepted.
        allowed: String,
    },
    /// The file is not valid TOML or names an unknown key.
    #[error("config: line {line}: {message} (every key is listed in pigeon.example.toml)")]
    Syntax {
        /// 1-based line of the problem.
        line: usize,
        /// The parser's description.
        message: String,
    },
}

impl Config {
    /// Parses a TOML file's text and checks every value.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            line: e.span().map_or(1, |span| line_of(text, span.start)),
            message: e.message().trim().into(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check("batch_interval_ms", self.batch_interval_ms, 1, 60_000)?;
        check("store_cache_mb", self.store_cache_mb, 1, 1 << 20)?;
        let l = &self.limits;
        check("limits.max_connections", l.max_connections, 1, usize::MAX)?;
        check("limits.max_packet_size", l.max_packet_size, 16, 268_435_460)?;
        check("limits.max_inflight", l.max_inflight, 1, u16::MAX)?;
        check("limits.receive_maximum", l.receive_maximum, 1, u16::MAX)?;
        check("features.maximum_qos", self.features.maximum_qos, 0, 2)?;
        check("limits.max_topic_levels", l.max_topic_levels, 1, 65_535)?;
        check("limits.max_client_id_len", l.max_client_id_len, 1, 65_535)?;
        check("limits.max_keep_alive", l.max_keep_alive, 1, u16::MAX)?;
        let timeout_ms = |key, v| check(key, v, 1, 600_000);
        timeout_ms("limits.handshake_timeout_ms", l.handshake_timeout_ms)?;
        timeout_ms("limits.auth_timeout_ms", l.auth_timeout_ms)?;
        for (i, listener) in self.listeners.iter().enumerate() {
            let key = |name: &str| format!("listeners[{i}].{name}");
            let bad = |name: &str, value: &str, allowed: &str| ConfigError::Value {
                key: key(name),
                value: value.into(),
                allowed: allowed.into(),
            };
            if listener.certfile.is_some() != listener.keyfile.is_some() {
                return Err(bad(
                    "keyfile",
                    &format!("{:?}", listener.keyfile),
                    "TLS needs both certfile and keyfile (PEM files)",
                ));
            }
            if listener.require_certificate && (listener.cafile.is_none() || !listener.tls()) {
                return Err(bad(
                    "require_certificate",
                    "true",
                    "needs TLS (certfile, keyfile) and a cafile to check client certificates against",
                ));
            }
            if listener.use_identity_as_username && !listener.require_certificate {
                return Err(bad(
                    "use_identity_as_username",
                    "true",
                    "needs require_certificate = true (and TLS with a cafile): \
                     the identity comes from the client's certificate",
                ));
            }
            if listener.max_connections == Some(0) {
                return Err(bad("max_connections", "0", "must be at least 1"));
            }
            if !listener.path.starts_with('/') {
                return Err(bad(
                    "path",
                    &listener.path,
                    "must start with '/', e.g. \"/mqtt\"",
                ));
            }
        }
        Ok(())
    }

    /// Whether a listener on `address` admits clients without a user name:
    /// its own setting, else the global one, else only on loopback.
    pub fn anonymous_allowed(&self, address: SocketAddr, own: Option<bool>) -> bool {
        own.or(self.allow_anonymous)
            .unwrap_or_else(|| address.ip().is_loopback())
    }

    /// The highest QoS the broker accepts and grants.
    pub fn maximum_qos(&self) -> pigeon_proto::QoS {
        pigeon_proto::QoS::from_u8(self.features.maximum_qos)
            .unwrap_or(pigeon_proto::QoS::ExactlyOnce)
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
        return Err(ConfigError::Value {
            key: key.into(),
            value: v.to_string(),
            allowed: format!("must be between {min} and {max}"),
        });
    }
    Ok(())
}

fn line_of(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
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
    fn the_example_file_lists_the_defaults() {
        let text = include_str!("../../../pigeon.example.toml");
        let c = Config::from_toml(text).unwrap();
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
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
