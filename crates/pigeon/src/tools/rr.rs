//! `pigeon rr`: mosquitto_rr's request/response. Subscribes to the
//! response topic (`-e`), publishes the request to `-t` with that topic as
//! its v5 Response Topic, prints the first response and exits; `-W` bounds
//! the wait (exit 27).

use std::time::Duration;

use clap::{ArgGroup, Args};
use pigeon_client::proto::codec::{Publish, SubscriptionOptions};
use pigeon_client::proto::topic::TopicName;
use pigeon_client::{Event, QoS};

use super::subscribe::{Output, Printer};
use super::{connect, debug_line, parse_qos, Common, Failure, Outcome, Payload, Tool};

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["message", "file", "stdin_file", "null_message"])
))]
pub struct RrArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub payload: Payload,
    /// Response topic: subscribed to, and sent as the request's Response Topic
    #[arg(short = 'e', long = "response-topic", help_heading = "Request")]
    pub response_topic: String,
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
    let topic = args.payload.topic(&plan)?;
    let response_topic = TopicName::try_from(args.response_topic.as_str()).map_err(|_| {
        Failure::usage(format!(
            "Error: Invalid response topic '{}': it must be a topic name, without wildcards.",
            args.response_topic
        ))
    })?;
    let payload = args.payload.read()?.unwrap_or_default();
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
