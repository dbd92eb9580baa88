//! `pigeon rr`: mosquitto_rr's request/response. Subscribes to the
//! response topic (`-e`), publishes the request to `-t` with that topic as
//! its v5 Response Topic, prints the first response and exits; `-W` bounds
//! the wait (exit 27).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Args};
use pigeon_client::proto::codec::{Publish, SubscriptionOptions};
use pigeon_client::proto::topic::TopicName;
use pigeon_client::{Event, QoS};

use super::subscribe::{Output, Printer};
use super::{connect, debug_line, parse_qos, read_payload, Common, Failure, Outcome, Tool};

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["message", "file", "stdin_file", "null_message"])
))]
pub struct RrArgs {
    #[command(flatten)]
    pub common: Common,
    /// Topic to send the request to
    #[arg(short = 't', long = "topic", help_heading = "Request")]
    pub topic: Option<String>,
    /// Response topic: subscribed to, and sent as the request's Response Topic
    #[arg(short = 'e', long = "response-topic", help_heading = "Request")]
    pub response_topic: String,
    /// Request payload
    #[arg(short = 'm', long = "message", help_heading = "Request")]
    pub message: Option<String>,
    /// Send a whole file as the request
    #[arg(short = 'f', long = "file", help_heading = "Request")]
    pub file: Option<PathBuf>,
    /// Send all of standard input as the request
    #[arg(short = 's', long = "stdin-file", help_heading = "Request")]
    pub stdin_file: bool,
    /// Send an empty request
    #[arg(short = 'n', long = "null-message", help_heading = "Request")]
    pub null_message: bool,
    /// QoS of the request and of the response subscription
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0", help_heading = "Request")]
    pub qos: QoS,
    /// Seconds to wait for the response (exit code 27)
    #[arg(short = 'W', help_heading = "Request")]
    pub timeout: Option<u64>,
    #[command(flatten)]
    pub output: Output,
}

pub async fn run(args: RrArgs) -> Outcome {
    let plan = args.common.plan(Tool::Rr)?;
    if !plan.options.protocol.is_v5() {
        return Err(Failure::usage(
            "Error: pigeon rr needs MQTT v5 (the response topic is a v5 property); drop -V.",
        ));
    }
    let topic = args
        .topic
        .clone()
        .or_else(|| plan.url_topic.clone())
        .ok_or_else(|| Failure::usage("Error: A topic must be supplied (-t)."))?;
    let topic = TopicName::try_from(topic.as_str()).map_err(|_| {
        Failure::usage(format!(
            "Error: Invalid publish topic '{topic}', does it contain '+' or '#'?"
        ))
    })?;
    let response_topic = TopicName::try_from(args.response_topic.as_str()).map_err(|_| {
        Failure::usage(format!(
            "Error: Invalid response topic '{}': it must be a topic name, without wildcards.",
            args.response_topic
        ))
    })?;
    let payload = match (&args.message, args.null_message) {
        (Some(m), _) => Bytes::from(m.clone()),
        (None, true) => Bytes::new(),
        _ => read_payload(args.file.as_ref(), args.stdin_file)?.unwrap_or_default(),
    };
    let mut printer = Printer::new(&args.output)?;
    let deadline = args
        .timeout
        .map(|secs| tokio::time::Instant::now() + Duration::from_secs(secs));
    let exchange = async {
        let mut connection = connect(&plan).await?;
        let client = connection.client.clone();
        let options = SubscriptionOptions {
            qos: args.qos,
            ..Default::default()
        };
        let filters = [(response_topic.as_str(), options)];
        let subscribing = client.subscribe_many(&filters, plan.properties("subscribe"));
        // Events are read while waiting for the SUBACK (for -d).
        let mut subscribing = std::pin::pin!(subscribing);
        let codes = loop {
            tokio::select! {
                codes = &mut subscribing => break codes,
                Some(event) = connection.events.recv() => {
                    if let Event::Log(line) = event {
                        if connection.debug {
                            debug_line(&plan.options, &line);
                        }
                    }
                }
            }
        };
        let codes = codes.map_err(|e| Failure::runtime(format!("Error: {e}")))?;
        if codes.iter().any(|c| c.is_error()) {
            return Err(Failure::runtime(format!(
                "Error: Subscription to the response topic {} refused: {}.",
                response_topic.as_str(),
                codes[0].name()
            )));
        }
        let mut request = Publish::new(topic.clone(), payload);
        request.qos = args.qos;
        request.properties = plan.properties("publish").into();
        request.properties.response_topic = Some(response_topic.clone());
        client
            .publish_message(request)
            .map_err(|e| Failure::runtime(format!("Error: {e}")))?;
        while let Some(event) = connection.events.recv().await {
            match event {
                Event::Log(line) if connection.debug => debug_line(&plan.options, &line),
                Event::Message(message) => {
                    if args.output.no_retained && message.retain {
                        continue;
                    }
                    printer.print(&message, plan.quiet);
                    let _ = client.disconnect().await;
                    return Ok(());
                }
                Event::Disconnected { .. } => break,
                _ => {}
            }
        }
        Err(Failure::runtime("Error: The connection was lost."))
    };
    match deadline {
        Some(deadline) => tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| Failure::timed_out())?,
        None => exchange.await,
    }
}
