//! `pigeon sub`: mosquitto_sub's flags, output (`-v`, `-N`, `-F`, `%j`) and
//! exit codes. Output goes to standard output, flushed per message; colour
//! only on a terminal (or with `--color always`).

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use pigeon_client::proto::codec::SubscriptionOptions;
use pigeon_client::proto::properties::Properties;
use pigeon_client::{topic_matches_sub, AsyncClient, Backoff, Event, Message, QoS};

use super::{connect, debug_line, parse_qos, Common, Failure, Outcome, Plan, Tool};
use crate::format::{write_default, Format, Received};

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// On a terminal only.
    Auto,
    Always,
    Never,
}

/// How messages are printed (shared with `pigeon rr`).
#[derive(Args, Debug, Clone)]
pub struct Output {
    /// Print "topic payload" instead of the payload
    #[arg(short = 'v', long = "verbose", help_heading = "Output")]
    pub verbose: bool,
    /// No newline after each message
    #[arg(short = 'N', help_heading = "Output")]
    pub no_eol: bool,
    /// Output format (% codes, @ time codes, \ escapes; see mosquitto_sub)
    #[arg(short = 'F', help_heading = "Output")]
    pub format: Option<String>,
    /// Indent the JSON of %j and %J
    #[arg(long = "pretty", help_heading = "Output")]
    pub pretty: bool,
    /// Do not print retained (stale) messages
    #[arg(short = 'R', help_heading = "Output")]
    pub no_retained: bool,
    /// Colour the topic: auto (on a terminal), always or never
    #[arg(
        long = "color",
        value_enum,
        default_value = "auto",
        help_heading = "Output"
    )]
    pub color: Color,
}

/// Prints messages as `Output` says.
pub struct Printer {
    format: Option<Format>,
    verbose: bool,
    no_eol: bool,
    pretty: bool,
    color: bool,
    buffer: Vec<u8>,
}

impl Printer {
    pub fn new(output: &Output) -> Result<Printer, Failure> {
        let format = match &output.format {
            Some(spec) => Some(
                Format::parse(spec)
                    .map(|f| f.no_eol(output.no_eol))
                    .map_err(|e| Failure::usage(format!("Error: {e}")))?,
            ),
            None => None,
        };
        let color = match output.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stdout().is_terminal(),
        };
        Ok(Printer {
            format,
            verbose: output.verbose,
            no_eol: output.no_eol,
            pretty: output.pretty,
            color,
            buffer: Vec::with_capacity(256),
        })
    }

    /// Prints one message and flushes.
    pub fn print(&mut self, message: &Message, quiet: bool) {
        let properties: &Properties = &message.properties;
        let received = Received {
            topic: message.topic.as_str(),
            payload: &message.payload,
            qos: message.qos as u8,
            retain: message.retain,
            mid: message.packet_id.map_or(0, |id| id.get()),
            properties,
            received_at: SystemTime::now(),
        };
        self.buffer.clear();
        match &self.format {
            Some(format) => {
                if let Err(e) = format.write(&received, self.pretty, &mut self.buffer) {
                    if !quiet {
                        eprintln!("Error: {e}");
                    }
                }
            }
            None if self.color && self.verbose => {
                // As -v prints it, with the topic in green.
                write_default(&received, true, self.no_eol, &mut self.buffer);
                let topic = received.topic.len();
                if self.buffer.len() > topic {
                    let rest = self.buffer.split_off(topic);
                    self.buffer.clear();
                    self.buffer.extend_from_slice(b"\x1b[32m");
                    self.buffer.extend_from_slice(received.topic.as_bytes());
                    self.buffer.extend_from_slice(b"\x1b[0m");
                    self.buffer.extend_from_slice(&rest);
                }
            }
            None => write_default(&received, self.verbose, self.no_eol, &mut self.buffer),
        }
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(&self.buffer);
        let _ = out.flush();
    }
}

#[derive(Args, Debug)]
pub struct SubArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic filter to subscribe to (repeatable)
    #[arg(short = 't', long = "topic", help_heading = "Subscription")]
    pub topics: Vec<String>,
    /// Do not print messages matching this filter (repeatable)
    #[arg(short = 'T', long = "filter-out", help_heading = "Subscription")]
    pub filter_out: Vec<String>,
    /// Unsubscribe from this filter (repeatable; with -c sessions)
    #[arg(short = 'U', long = "unsubscribe", help_heading = "Subscription")]
    pub unsubscribe: Vec<String>,
    /// QoS of the subscriptions
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0", help_heading = "Subscription")]
    pub qos: QoS,
    /// Exit after this many messages
    #[arg(short = 'C', help_heading = "Subscription")]
    pub count: Option<u64>,
    /// Exit after this many seconds (exit code 27)
    #[arg(short = 'W', help_heading = "Subscription")]
    pub timeout: Option<u64>,
    /// Exit once subscribed
    #[arg(short = 'E', help_heading = "Subscription")]
    pub exit_on_suback: bool,
    /// Clear each retained message received
    #[arg(long = "remove-retained", help_heading = "Subscription")]
    pub remove_retained: bool,
    /// Print only retained messages; exit at the first live one
    #[arg(long = "retained-only", help_heading = "Subscription")]
    pub retained_only: bool,
    /// v5 subscription option Retain As Published
    #[arg(long = "retain-as-published", help_heading = "Subscription")]
    pub retain_as_published: bool,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(args: SubArgs) -> Outcome {
    let mut plan = args.common.plan(Tool::Sub)?;
    let mut topics = args.topics.clone();
    if let Some(topic) = &plan.url_topic {
        topics.push(topic.clone());
    }
    if topics.is_empty() && args.unsubscribe.is_empty() {
        return Err(Failure::usage(
            "Error: You must specify a topic to subscribe to (-t).",
        ));
    }
    let mut printer = Printer::new(&args.output)?;
    // Like mosquitto_sub, come back after a lost connection.
    plan.options.reconnect = Some(Backoff::default());
    let deadline = args
        .timeout
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    let connecting = connect(&plan);
    let mut connection = match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, connecting)
            .await
            .map_err(|_| Failure::timed_out())??,
        None => connecting.await?,
    };
    let client = connection.client.clone();
    subscribe(&client, &plan, &args, &topics)?;
    let mut printed = 0u64;
    let mut deletions = Vec::new();
    let mut acks_due = usize::from(!topics.is_empty()) + args.unsubscribe.len();
    let sleep = tokio::time::sleep_until(deadline.unwrap_or_else(far_future));
    tokio::pin!(sleep);
    let result = loop {
        let event = tokio::select! {
            event = connection.events.recv() => event,
            () = &mut sleep => break Err(Failure::timed_out()),
        };
        let Some(event) = event else {
            break Err(Failure::runtime("Error: The connection was closed."));
        };
        match event {
            Event::Log(line) if connection.debug => debug_line(&plan.options, &line),
            Event::Subscribed { mid, reason_codes } => {
                if connection.debug {
                    let codes: Vec<String> =
                        reason_codes.iter().map(|c| c.value().to_string()).collect();
                    println!("Subscribed (mid: {mid}): {}", codes.join(", "));
                }
                for (topic, code) in topics.iter().zip(&reason_codes) {
                    if code.is_error() && !plan.quiet {
                        eprintln!("Subscription to {topic} refused: {}.", code.name());
                    }
                }
                if reason_codes.iter().all(|c| c.is_error()) && !reason_codes.is_empty() {
                    break Err(Failure::runtime("Error: All subscriptions were refused."));
                }
                acks_due = acks_due.saturating_sub(1);
                if args.exit_on_suback && acks_due == 0 {
                    break Ok(());
                }
            }
            Event::Unsubscribed { .. } => {
                acks_due = acks_due.saturating_sub(1);
                if args.exit_on_suback && acks_due == 0 {
                    break Ok(());
                }
            }
            Event::Connected {
                session_present: false,
                ..
            } => {
                // The client subscribes again by itself after a reconnection.
            }
            Event::Message(message) => {
                if args
                    .filter_out
                    .iter()
                    .any(|f| topic_matches_sub(f, message.topic.as_str()))
                {
                    continue;
                }
                if args.retained_only && !message.retain {
                    break Ok(());
                }
                if args.remove_retained && message.retain {
                    // QoS 1, as mosquitto_sub: the broker has it before we
                    // go.
                    let topic = message.topic.as_str();
                    if let Ok(p) = client.start_publish(topic, QoS::AtLeastOnce, true, Vec::new()) {
                        deletions.push(p);
                    }
                }
                if args.output.no_retained && message.retain {
                    continue;
                }
                printer.print(&message, plan.quiet);
                printed += 1;
                if args.count.is_some_and(|n| printed >= n) {
                    break Ok(());
                }
            }
            Event::ConnectFailed(e) if !plan.quiet => {
                eprintln!("Error: {e} (reconnecting)");
            }
            _ => {}
        }
    };
    let finishing = async {
        for deletion in deletions {
            let _ = deletion.wait().await;
        }
        let _ = client.disconnect().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), finishing).await;
    result
}

fn subscribe(
    client: &AsyncClient,
    plan: &Plan,
    args: &SubArgs,
    topics: &[String],
) -> Result<(), Failure> {
    let options = SubscriptionOptions {
        qos: args.qos,
        retain_as_published: args.retain_as_published,
        ..Default::default()
    };
    if !topics.is_empty() {
        let filters: Vec<(&str, SubscriptionOptions)> =
            topics.iter().map(|t| (t.as_str(), options)).collect();
        let client = client.clone();
        let properties = plan.properties("subscribe");
        let filters: Vec<(String, SubscriptionOptions)> = filters
            .into_iter()
            .map(|(f, o)| (f.to_owned(), o))
            .collect();
        // Checked here, answered through the events (Event::Subscribed).
        for (filter, _) in &filters {
            pigeon_client::proto::topic::TopicFilter::try_from(filter.as_str()).map_err(|_| {
                Failure::usage(format!("Error: Invalid subscription topic '{filter}', are all '+' and '#' wildcards correct?"))
            })?;
        }
        tokio::spawn(async move {
            let filters: Vec<(&str, SubscriptionOptions)> =
                filters.iter().map(|(f, o)| (f.as_str(), *o)).collect();
            let _ = client.subscribe_many(&filters, properties).await;
        });
    }
    if !args.unsubscribe.is_empty() {
        let client = client.clone();
        let filters = args.unsubscribe.clone();
        tokio::spawn(async move {
            for filter in filters {
                let _ = client.unsubscribe(&filter).await;
            }
        });
    }
    Ok(())
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}
