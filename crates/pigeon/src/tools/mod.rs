//! The client tools `pigeon pub`, `pigeon sub` and `pigeon rr`: mosquitto_pub,
//! mosquitto_sub and mosquitto_rr's flags, output and exit codes, built on
//! `pigeon-client`.
//!
//! What they share lives here: the connection, TLS, will and `-D`
//! property flags (`Common`), turning them into client `Options`,
//! connecting, and the errors that end a tool with mosquitto's exit code
//! (0 success, the CONNACK code on refusal: 1–5 in 3.1.1, 128–162 in 5.0,
//! 27 on a `-W` timeout, 1 otherwise).

pub mod publish;
pub mod rr;
pub mod subscribe;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use pigeon_client::proto::codec::Will;
use pigeon_client::proto::properties::Properties;
use pigeon_client::proto::string::MqttStr;
use pigeon_client::proto::topic::TopicName;
use pigeon_client::{AsyncClient, ClientError, Event, Events, Options, Protocol, QoS, ReasonCode};

/// How a tool ends when it does not succeed: a line for stderr and the
/// exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// Printed even with `--quiet` (bad arguments, as mosquitto does).
    pub always: bool,
}

impl Failure {
    /// A bad argument: exit 1, printed even with `--quiet`.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
            always: true,
        }
    }

    /// A runtime error: exit 1.
    pub fn runtime(message: impl Into<String>) -> Failure {
        Failure {
            code: 1,
            message: message.into(),
            always: false,
        }
    }

    /// `-W` ran out: exit 27, "Timed out".
    pub fn timed_out() -> Failure {
        Failure {
            code: 27,
            message: "Timed out".into(),
            always: false,
        }
    }
}

pub type Outcome = Result<(), Failure>;

/// Flags every client tool takes (mosquitto's common options).
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Broker host [default: localhost]
    #[arg(short = 'h', long = "host", help_heading = "Connection")]
    pub host: Option<String>,
    /// Broker port [default: 1883, or 8883 with TLS]
    #[arg(short = 'p', long = "port", help_heading = "Connection")]
    pub port: Option<u16>,
    /// mqtt(s)://[user[:password]@]host[:port]/topic, or ws(s)://…
    #[arg(short = 'L', long = "url", help_heading = "Connection")]
    pub url: Option<String>,
    /// MQTT version: mqttv5 (5), mqttv311 (311) or mqttv31 (31)
    #[arg(short = 'V', long = "protocol-version", value_parser = parse_protocol, help_heading = "Connection")]
    pub protocol: Option<Protocol>,
    /// Client id [default: assigned by the broker]
    #[arg(short = 'i', long = "id", help_heading = "Connection")]
    pub id: Option<String>,
    /// Client id prefix; the process id is appended
    #[arg(
        short = 'I',
        long = "id-prefix",
        conflicts_with = "id",
        help_heading = "Connection"
    )]
    pub id_prefix: Option<String>,
    /// User name
    #[arg(short = 'u', long = "username", help_heading = "Connection")]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'P', long = "pw", help_heading = "Connection")]
    pub password: Option<String>,
    /// Keep-alive in seconds
    #[arg(
        short = 'k',
        long = "keepalive",
        default_value_t = 60,
        help_heading = "Connection"
    )]
    pub keepalive: u16,
    /// Persistent session (clean session off); needs -i
    #[arg(
        short = 'c',
        long = "disable-clean-session",
        help_heading = "Connection"
    )]
    pub persistent: bool,
    /// v5 session expiry in seconds (-1: never) [default: -1 with -c, else 0]
    #[arg(short = 'x', value_parser = parse_expiry, allow_negative_numbers = true, help_heading = "Connection")]
    pub session_expiry: Option<u32>,
    /// v5 property: -D COMMAND NAME VALUE (user-property: NAME KEY VALUE)
    #[arg(short = 'D', long = "property", num_args = 3..=4, value_names = ["COMMAND", "NAME", "VALUE"], action = clap::ArgAction::Append, help_heading = "Connection")]
    pub properties: Vec<String>,
    /// Print every packet sent and received
    #[arg(short = 'd', long = "debug", help_heading = "Connection")]
    pub debug: bool,
    /// Print no runtime errors
    #[arg(long = "quiet", help_heading = "Connection")]
    pub quiet: bool,
    /// Print help
    #[arg(long = "help", action = clap::ArgAction::HelpShort)]
    pub help: Option<bool>,

    /// Will topic (needed for any will)
    #[arg(long = "will-topic", help_heading = "Will")]
    pub will_topic: Option<String>,
    /// Will payload [default: empty]
    #[arg(long = "will-payload", help_heading = "Will")]
    pub will_payload: Option<String>,
    /// Will QoS
    #[arg(long = "will-qos", value_parser = parse_qos, default_value = "0", help_heading = "Will")]
    pub will_qos: QoS,
    /// Retain the will
    #[arg(long = "will-retain", help_heading = "Will")]
    pub will_retain: bool,

    /// PEM file of CA certificates to trust (turns TLS on)
    #[arg(long = "cafile", help_heading = "TLS")]
    pub cafile: Option<PathBuf>,
    /// Directory of PEM CA certificates to trust (turns TLS on)
    #[arg(long = "capath", help_heading = "TLS")]
    pub capath: Option<PathBuf>,
    /// Client certificate (PEM), with --key
    #[arg(long = "cert", requires = "key", help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with --cert
    #[arg(long = "key", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Do not check that the certificate is for the host (testing only)
    #[arg(long = "insecure", help_heading = "TLS")]
    pub insecure: bool,
    /// TLS version: tlsv1.3 or tlsv1.2 [default: either]
    #[arg(long = "tls-version", value_parser = ["tlsv1.2", "tlsv1.3"], help_heading = "TLS")]
    pub tls_version: Option<String>,
    /// ALPN protocol to offer
    #[arg(long = "tls-alpn", help_heading = "TLS")]
    pub tls_alpn: Option<String>,
    /// Trust the system's CA certificates (turns TLS on)
    #[arg(long = "tls-use-os-certs", help_heading = "TLS")]
    pub tls_use_os_certs: bool,
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "mqttv5" | "5" => Ok(Protocol::V5),
        "mqttv311" | "311" => Ok(Protocol::V3_1_1),
        "mqttv31" | "31" => Ok(Protocol::V3_1),
        _ => Err("use mqttv5 (5), mqttv311 (311) or mqttv31 (31)".into()),
    }
}

pub fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_u8)
        .ok_or_else(|| "QoS must be 0, 1 or 2".into())
}

fn parse_expiry(s: &str) -> Result<u32, String> {
    match s {
        "-1" | "∞" => Ok(u32::MAX),
        _ => s
            .parse()
            .map_err(|_| "the session expiry must be seconds, or -1 for never".into()),
    }
}

/// Which tool, for defaults and wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Pub,
    Sub,
    Rr,
}

/// What the common flags resolve to, before connecting.
#[derive(Debug)]
pub struct Plan {
    pub options: Options,
    /// The topic from an `-L` URL's path.
    pub url_topic: Option<String>,
    /// `-D` properties, by command (lower case).
    pub properties: Vec<(String, Properties)>,
    pub quiet: bool,
    pub debug: bool,
}

impl Plan {
    /// The `-D` properties for `command` (e.g. "publish").
    pub fn properties(&self, command: &str) -> Properties {
        self.properties
            .iter()
            .find(|(c, _)| c == command)
            .map(|(_, p)| p.clone())
            .unwrap_or_default()
    }
}

impl Common {
    /// Checks the flags and builds the client's options.
    pub fn plan(&self, tool: Tool) -> Result<Plan, Failure> {
        let mut url_topic = None;
        let mut options = match &self.url {
            Some(url) => {
                let (url, topic) = split_url_topic(url);
                url_topic = topic;
                Options::from_url(&url).map_err(|e| Failure::usage(format!("Error: {e}")))?
            }
            None => Options::new("localhost", 1883),
        };
        if let Some(host) = &self.host {
            options.host = host.clone();
        }
        let properties = parse_properties(&self.properties)?;
        let protocol = match (self.protocol, properties.is_empty(), tool) {
            (Some(p), true, _) => p,
            (Some(p), false, _) if p.is_v5() => p,
            (Some(_), false, _) => {
                return Err(Failure::usage(
                    "Error: -D properties need MQTT v5 (-V mqttv5).",
                ))
            }
            (None, false, _) | (None, true, Tool::Rr) => Protocol::V5,
            (None, true, _) => Protocol::V3_1_1,
        };
        options.protocol = protocol;
        options.keep_alive = Duration::from_secs(u64::from(self.keepalive));
        options.client_id = match (&self.id, &self.id_prefix) {
            (Some(id), _) => id.clone(),
            (None, Some(prefix)) => format!("{prefix}{}", std::process::id()),
            (None, None) => String::new(),
        };
        if self.persistent {
            if options.client_id.is_empty() {
                return Err(Failure::usage(
                    "Error: You must provide a client id if you are using the -c option.",
                ));
            }
            options.clean_start = false;
            options.session_expiry = Some(self.session_expiry.unwrap_or(u32::MAX));
        } else {
            options.session_expiry = self.session_expiry;
        }
        if let Some(user) = &self.username {
            options.username = Some(user.clone());
        }
        if let Some(password) = &self.password {
            if options.username.is_none() && !protocol.is_v5() {
                return Err(Failure::usage(
                    "Error: a password (-P) needs a user name (-u) in MQTT 3.1.1 and 3.1.",
                ));
            }
            options.password = Some(Bytes::copy_from_slice(password.as_bytes()));
        }
        options.will = self.will(&properties)?;
        if protocol.is_v5() {
            options.connect_properties = properties
                .iter()
                .find(|(c, _)| c == "connect")
                .map(|(_, p)| p.clone())
                .unwrap_or_default();
            if let Some(expiry) = options.connect_properties.session_expiry_interval {
                options.session_expiry = Some(expiry);
            }
        }
        self.tls(&mut options)?;
        if let Some(port) = self.port {
            options.port = port;
        }
        options.log_packets = self.debug;
        options.reconnect = None;
        options.connect_timeout = Duration::from_secs(10);
        Ok(Plan {
            options,
            url_topic,
            properties,
            quiet: self.quiet,
            debug: self.debug,
        })
    }

    fn will(&self, properties: &[(String, Properties)]) -> Result<Option<Will>, Failure> {
        let Some(topic) = &self.will_topic else {
            if self.will_payload.is_some() || self.will_retain {
                return Err(Failure::usage(
                    "Error: Will payload or retain given, but no will topic (--will-topic).",
                ));
            }
            return Ok(None);
        };
        let topic = TopicName::try_from(topic.as_str())
            .map_err(|e| Failure::usage(format!("Error: Invalid will topic '{topic}': {e}.")))?;
        Ok(Some(Will {
            topic,
            payload: Bytes::from(self.will_payload.clone().unwrap_or_default()),
            qos: self.will_qos,
            retain: self.will_retain,
            properties: properties
                .iter()
                .find(|(c, _)| c == "will")
                .map(|(_, p)| p.clone())
                .unwrap_or_default(),
        }))
    }

    fn tls(&self, options: &mut Options) -> Result<(), Failure> {
        let asked = self.cafile.is_some()
            || self.capath.is_some()
            || self.cert.is_some()
            || self.tls_use_os_certs
            || self.insecure
            || self.tls_version.is_some()
            || self.tls_alpn.is_some();
        if !asked {
            return Ok(());
        }
        let mut tls = options.tls.clone();
        tls.ca_file = self.cafile.clone();
        if let Some(dir) = &self.capath {
            tls.ca_dir = Some(dir.clone());
        }
        tls.client_cert = self.cert.clone().zip(self.key.clone());
        tls.insecure = self.insecure;
        tls.alpn = self.tls_alpn.iter().cloned().collect();
        tls.versions = match self.tls_version.as_deref() {
            Some("tlsv1.2") => vec![pigeon_client::TlsVersion::Tls12],
            Some("tlsv1.3") => vec![pigeon_client::TlsVersion::Tls13],
            _ => Vec::new(),
        };
        let plain_port = options.port == 1883 && !options.transport.is_tls();
        *options = std::mem::replace(options, Options::new("", 0)).tls(tls);
        if plain_port {
            options.port = 8883;
        }
        Ok(())
    }
}

/// `mqtt://host/topic` → (`mqtt://host`, `topic`): mosquitto's `-L` carries
/// the topic in the path (WebSocket URLs keep their path).
fn split_url_topic(url: &str) -> (String, Option<String>) {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("ws://") || lower.starts_with("wss://") {
        return (url.to_owned(), None);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    match rest.split_once('/') {
        Some((authority, topic)) if !topic.is_empty() => {
            (format!("{scheme}://{authority}"), Some(topic.to_owned()))
        }
        Some((authority, _)) => (format!("{scheme}://{authority}"), None),
        None => (url.to_owned(), None),
    }
}

/// The `-D` commands mosquitto accepts.
const COMMANDS: [&str; 11] = [
    "connect",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "auth",
    "will",
];

/// The `-D` values, flattened by clap: each occurrence is COMMAND NAME
/// VALUE, or COMMAND user-property KEY VALUE.
fn parse_properties(flat: &[String]) -> Result<Vec<(String, Properties)>, Failure> {
    let mut given: Vec<&[String]> = Vec::new();
    let mut rest = flat;
    while !rest.is_empty() {
        let take = match rest.get(1).map(String::as_str) {
            Some("user-property") => 4,
            _ => 3,
        };
        if rest.len() < take {
            return Err(Failure::usage(format!(
                "Error: -D {} needs more values.",
                rest.join(" ")
            )));
        }
        given.push(&rest[..take]);
        rest = &rest[take..];
    }
    let mut by_command: Vec<(String, Properties)> = Vec::new();
    for values in given {
        let command = values[0].to_ascii_lowercase();
        if !COMMANDS.contains(&command.as_str()) {
            return Err(Failure::usage(format!(
                "Error: Invalid command '{}' for -D; use one of {}.",
                values[0],
                COMMANDS.join(", ")
            )));
        }
        let index = match by_command.iter().position(|(c, _)| *c == command) {
            Some(i) => i,
            None => {
                by_command.push((command.clone(), Properties::default()));
                by_command.len() - 1
            }
        };
        set_property(&mut by_command[index].1, &command, &values[1..])?;
    }
    Ok(by_command)
}

fn set_property(p: &mut Properties, command: &str, values: &[String]) -> Result<(), Failure> {
    let name = values[0].as_str();
    let bad = |why: &str| Failure::usage(format!("Error: -D {command} {name}: {why}."));
    let value = || -> Result<&str, Failure> {
        match values {
            [_, v] => Ok(v.as_str()),
            _ => Err(bad("needs exactly one value")),
        }
    };
    let string = |v: &str| MqttStr::try_from(v).map_err(|e| bad(&e.to_string()));
    let number = |v: &str| v.parse::<u32>().map_err(|_| bad("needs a number"));
    let small = |v: &str| {
        v.parse::<u16>()
            .map_err(|_| bad("needs a number up to 65535"))
    };
    let flag = |v: &str| match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(bad("needs 0 or 1")),
    };
    let allowed: &[&str] = match name {
        "content-type"
        | "response-topic"
        | "correlation-data"
        | "message-expiry-interval"
        | "payload-format-indicator" => &["publish", "will"],
        "topic-alias" => &["publish"],
        "will-delay-interval" => &["will"],
        "session-expiry-interval" => &["connect", "disconnect"],
        "receive-maximum"
        | "maximum-packet-size"
        | "topic-alias-maximum"
        | "request-response-information"
        | "request-problem-information" => &["connect"],
        "authentication-method" | "authentication-data" => &["connect", "auth"],
        "subscription-identifier" => &["subscribe"],
        "reason-string" => &[
            "puback",
            "pubrec",
            "pubrel",
            "pubcomp",
            "disconnect",
            "auth",
        ],
        "user-property" => &COMMANDS,
        _ => return Err(bad("unknown property")),
    };
    if !allowed.contains(&command) {
        return Err(bad(&format!(
            "not allowed in this packet (allowed in: {})",
            allowed.join(", ")
        )));
    }
    match name {
        "user-property" => match values {
            [_, key, v] => p.user_properties.push((string(key)?, string(v)?)),
            _ => return Err(bad("needs a name and a value")),
        },
        "content-type" => p.content_type = Some(string(value()?)?),
        "response-topic" => {
            let topic = TopicName::try_from(value()?).map_err(|e| bad(&e.to_string()))?;
            p.response_topic = Some(topic);
        }
        "correlation-data" => p.correlation_data = Some(Bytes::from(value()?.to_owned())),
        "message-expiry-interval" => p.message_expiry_interval = Some(number(value()?)?),
        "payload-format-indicator" => p.payload_format_indicator = Some(flag(value()?)?),
        "topic-alias" => p.topic_alias = Some(small(value()?)?),
        "will-delay-interval" => p.will_delay_interval = Some(number(value()?)?),
        "session-expiry-interval" => p.session_expiry_interval = Some(number(value()?)?),
        "receive-maximum" => p.receive_maximum = Some(small(value()?)?),
        "maximum-packet-size" => p.maximum_packet_size = Some(number(value()?)?),
        "topic-alias-maximum" => p.topic_alias_maximum = Some(small(value()?)?),
        "request-response-information" => {
            p.request_response_information = Some(flag(value()?)?);
        }
        "request-problem-information" => p.request_problem_information = Some(flag(value()?)?),
        "authentication-method" => p.authentication_method = Some(string(value()?)?),
        "authentication-data" => p.authentication_data = Some(Bytes::from(value()?.to_owned())),
        "subscription-identifier" => p.subscription_identifiers.push(number(value()?)?),
        "reason-string" => p.reason_string = Some(string(value()?)?),
        _ => return Err(bad("unknown property")),
    }
    Ok(())
}

/// A connected client and its events.
pub struct Connection {
    pub client: AsyncClient,
    pub events: Events,
    pub debug: bool,
}

/// Connects and waits for the broker's answer. `Failure` carries
/// mosquitto's exit code for a refusal.
pub async fn connect(plan: &Plan) -> Result<Connection, Failure> {
    let (client, mut events) = AsyncClient::new(plan.options.clone());
    let address = plan.options.address();
    loop {
        match events.recv().await {
            Some(Event::Connected { connack, .. }) => {
                if let Some(id) = &connack.properties.assigned_client_identifier {
                    if let Ok(mut debug_id) = DEBUG_ID.lock() {
                        *debug_id = id.as_str().to_owned();
                    }
                }
                break;
            }
            Some(Event::Log(line)) if plan.debug => debug_line(&plan.options, &line),
            Some(Event::ConnectFailed(e)) => {
                return Err(connect_failure(&e, &address, plan.options.protocol))
            }
            Some(_) => {}
            None => {
                return Err(Failure::runtime(format!(
                    "Error: the connection to {address} ended"
                )))
            }
        }
    }
    Ok(Connection {
        client,
        events,
        debug: plan.debug,
    })
}

/// The client id `-d` names: the one given, or the one a v5 broker
/// assigned, or "(null)" (one client per process).
static DEBUG_ID: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// `-d` output, as mosquitto prints it: "Client ID sending CONNECT".
pub fn debug_line(options: &Options, line: &str) {
    let assigned = DEBUG_ID.lock().map(|id| id.clone()).unwrap_or_default();
    let id = match (options.client_id.as_str(), assigned.as_str()) {
        ("", "") => "(null)",
        ("", assigned) => assigned,
        (id, _) => id,
    };
    for line in line.lines() {
        let line = line
            .replacen("Sending ", "sending ", 1)
            .replacen("Received ", "received ", 1);
        println!("Client {id} {line}");
    }
}

fn connect_failure(e: &ClientError, address: &str, protocol: Protocol) -> Failure {
    match e {
        ClientError::Refused(code) => refused(*code, address, protocol),
        ClientError::Unreachable { why, .. } => {
            let hint = if why.contains("refused") {
                "; is a broker running there? Start one with `pigeon broker`"
            } else {
                ""
            };
            Failure::runtime(format!("Error: cannot connect to {address}: {why}{hint}"))
        }
        other => Failure::runtime(format!("Error: {other}")),
    }
}

/// A CONNACK refusal: mosquitto's exit code and words, with the broker's
/// address. A 3.x return code arrives as its v5 equivalent; mosquitto exits
/// with the 3.x number.
fn refused(code: ReasonCode, address: &str, protocol: Protocol) -> Failure {
    let (exit, words) = match protocol.is_v5() {
        true => (code.value(), code.name().to_owned()),
        false => {
            let v3 = pigeon_client::proto::reason::v3_connack::encode(code);
            (v3, v3_words(v3))
        }
    };
    let hint = match exit {
        4 | 5 | 134 | 135 => " Check the user name and password (-u, -P).",
        _ => "",
    };
    Failure {
        code: exit,
        message: format!("Connection error: {words} ({address}).{hint}"),
        always: false,
    }
}

fn v3_words(code: u8) -> String {
    match code {
        1 => "Connection Refused: unacceptable protocol version",
        2 => "Connection Refused: identifier rejected",
        3 => "Connection Refused: broker unavailable",
        4 => "Connection Refused: bad user name or password",
        _ => "Connection Refused: not authorised",
    }
    .to_owned()
}

/// Where a message comes from (`pub` and `rr`; `pub` adds `-l`).
#[derive(Args, Debug, Clone)]
pub struct Payload {
    /// Topic to publish to
    #[arg(short = 't', long = "topic", help_heading = "Message")]
    pub topic: Option<String>,
    /// Payload
    #[arg(short = 'm', long = "message", help_heading = "Message")]
    pub message: Option<String>,
    /// Send a whole file as the payload
    #[arg(short = 'f', long = "file", help_heading = "Message")]
    pub file: Option<PathBuf>,
    /// Send all of standard input as one message
    #[arg(short = 's', long = "stdin-file", help_heading = "Message")]
    pub stdin_file: bool,
    /// Send an empty payload (with -r: clears the retained message)
    #[arg(short = 'n', long = "null-message", help_heading = "Message")]
    pub null_message: bool,
}

impl Payload {
    /// The topic to publish to: `-t`, or the `-L` URL's path.
    pub fn topic(&self, plan: &Plan) -> Result<TopicName, Failure> {
        let topic = self
            .topic
            .clone()
            .or_else(|| plan.url_topic.clone())
            .ok_or_else(|| Failure::usage("Error: A topic must be supplied (-t)."))?;
        TopicName::try_from(topic.as_str()).map_err(|_| {
            Failure::usage(format!(
                "Error: Invalid publish topic '{topic}', does it contain '+' or '#'?"
            ))
        })
    }

    /// The payload `-m`, `-n`, `-f` or `-s` gives; `None` for none of them.
    pub fn read(&self) -> Result<Option<Bytes>, Failure> {
        match (&self.message, self.null_message) {
            (Some(m), _) => Ok(Some(Bytes::from(m.clone()))),
            (None, true) => Ok(Some(Bytes::new())),
            _ => read_payload(self.file.as_ref(), self.stdin_file),
        }
    }
}

/// Reads a file or standard input whole.
fn read_payload(file: Option<&PathBuf>, stdin: bool) -> Result<Option<Bytes>, Failure> {
    use std::io::Read;
    if let Some(path) = file {
        let data = std::fs::read(path).map_err(|e| {
            Failure::usage(format!(
                "Error: Unable to read file \"{}\": {e}.",
                path.display()
            ))
        })?;
        return Ok(Some(Bytes::from(data)));
    }
    if stdin {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| Failure::usage(format!("Error: Unable to read standard input: {e}.")))?;
        return Ok(Some(Bytes::from(data)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_are_topics_for_mqtt_and_paths_for_websocket() {
        assert_eq!(
            split_url_topic("mqtt://u:p@h:1884/a/b"),
            ("mqtt://u:p@h:1884".to_owned(), Some("a/b".to_owned()))
        );
        assert_eq!(split_url_topic("mqtts://h"), ("mqtts://h".to_owned(), None));
        assert_eq!(
            split_url_topic("ws://h/mqtt"),
            ("ws://h/mqtt".to_owned(), None)
        );
    }

    #[test]
    fn properties_are_checked_against_their_packet() {
        let given: Vec<String> = [
            "publish",
            "content-type",
            "text/plain",
            "PUBLISH",
            "user-property",
            "k",
            "v",
            "connect",
            "receive-maximum",
            "10",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let parsed = parse_properties(&given).expect("valid");
        assert_eq!(parsed.len(), 2);
        assert_eq!(
            parsed[0].1.content_type.as_ref().map(MqttStr::as_str),
            Some("text/plain")
        );
        assert_eq!(parsed[0].1.user_properties.len(), 1);
        for bad in [
            vec!["publish", "receive-maximum", "1"],
            vec!["nothing", "content-type", "x"],
            vec!["publish", "message-expiry-interval", "soon"],
            vec!["publish", "colour", "red"],
        ] {
            let bad: Vec<String> = bad.into_iter().map(String::from).collect();
            assert!(parse_properties(&bad).is_err(), "{bad:?}");
        }
    }
}
