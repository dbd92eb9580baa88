//! `pigeon pub`: mosquitto_pub's flags and behaviour. Exactly one message
//! source (`-m`, `-f`, `-l`, `-s`, `-n`); `-l` publishes each line of
//! standard input as it comes and stays connected until its end.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgGroup, Args};
use pigeon_client::proto::codec::Publish;
use pigeon_client::{Event, Publication, QoS};
use tokio::io::AsyncBufReadExt;

use super::{connect, debug_line, parse_qos, Common, Failure, Outcome, Payload, Tool};

#[derive(Args, Debug)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["message", "file", "stdin_line", "stdin_file", "null_message"])
))]
pub struct PubArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub payload: Payload,
    /// Send each line of standard input as a message
    #[arg(short = 'l', long = "stdin-line", help_heading = "Message")]
    pub stdin_line: bool,
    /// Retain the message
    #[arg(short = 'r', long = "retain", help_heading = "Message")]
    pub retain: bool,
    /// QoS
    #[arg(short = 'q', long = "qos", value_parser = parse_qos, default_value = "0", help_heading = "Message")]
    pub qos: QoS,
    /// Publish the message this many times
    #[arg(long = "repeat", default_value_t = 1, help_heading = "Message")]
    pub repeat: u32,
    /// Seconds between repeats (fractions allowed)
    #[arg(long = "repeat-delay", help_heading = "Message")]
    pub repeat_delay: Option<f64>,
    /// QoS 1/2 messages in flight at once
    #[arg(short = 'M', default_value_t = 20, help_heading = "Message")]
    pub max_inflight: u16,
}

pub async fn run(args: PubArgs) -> Outcome {
    let mut plan = args.common.plan(Tool::Pub)?;
    plan.options.max_inflight = args.max_inflight.max(1);
    let topic = args.payload.topic(&plan)?;
    let payload = args.payload.read()?;
    let delay = match args.repeat_delay {
        Some(d) if !(d.is_finite() && d >= 0.0) => {
            return Err(Failure::usage(
                "Error: --repeat-delay must be a number of seconds.",
            ))
        }
        Some(d) => Duration::from_secs_f64(d),
        None => Duration::ZERO,
    };
    let properties = plan.properties("publish");
    let mut connection = connect(&plan).await?;
    let client = connection.client.clone();
    let options = plan.options.clone();
    let debug = connection.debug;
    // The events: packet lines for -d, a lost connection ends the tool.
    let (lost_tx, mut lost) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(async move {
        let mut lost_tx = Some(lost_tx);
        while let Some(event) = connection.events.recv().await {
            match event {
                Event::Log(line) if debug => debug_line(&options, &line),
                Event::Disconnected { .. } => {
                    if let Some(tx) = lost_tx.take() {
                        let _ = tx.send(());
                    }
                }
                _ => {}
            }
        }
    });
    let message = |payload: Bytes| {
        let mut m = Publish::new(topic.clone(), payload);
        m.qos = args.qos;
        m.retain = args.retain;
        m.properties = properties.clone().into();
        m
    };
    let mut window: VecDeque<Publication> = VecDeque::new();
    let mut result = Ok(());
    match payload {
        Some(payload) => {
            for n in 0..args.repeat.max(1) {
                if n > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let publication = client
                    .publish_message(message(payload.clone()))
                    .map_err(|e| Failure::runtime(format!("Error: {e}")))?;
                result = finish(publication, plan.quiet).await;
                if result.is_err() {
                    break;
                }
            }
        }
        None => {
            // -l: each line as it comes, a window of them in flight.
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            loop {
                let line = tokio::select! {
                    line = lines.next_line() => line,
                    _ = &mut lost => {
                        result = Err(Failure::runtime("Error: The connection was lost."));
                        break;
                    }
                };
                let Ok(Some(line)) = line else { break };
                let publication = client
                    .publish_message(message(Bytes::from(line)))
                    .map_err(|e| Failure::runtime(format!("Error: {e}")))?;
                window.push_back(publication);
                if window.len() >= usize::from(args.max_inflight.max(1)) {
                    if let Some(oldest) = window.pop_front() {
                        result = finish(oldest, plan.quiet).await;
                        if result.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
    for publication in window {
        if result.is_ok() {
            result = finish(publication, plan.quiet).await;
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), watcher).await;
    result
}

/// Waits for one publish to complete. A v5 broker's refusal is a warning
/// (mosquitto_pub exits 0 for it); a lost connection is an error.
async fn finish(publication: Publication, quiet: bool) -> Outcome {
    let mid = publication.mid();
    match publication.wait().await {
        Ok(code) if code.is_error() => {
            if !quiet {
                eprintln!("Warning: Publish {mid} failed: {}.", code.name());
            }
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(Failure::runtime(format!("Error: {e}"))),
    }
}
