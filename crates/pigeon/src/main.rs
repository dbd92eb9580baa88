//! The `pigeon` command. `pigeon broker` runs the broker; the client tools
//! (`pub`, `sub`, `rr`, `bench`, `passwd`) are not written yet and say so.

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pigeon_broker::auth::DefaultPolicy;
use pigeon_broker::{open_store, Broker, Config, Durability};

#[derive(Parser)]
#[command(name = "pigeon", version, about = "MQTT broker and tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MQTT broker (MQTT on 127.0.0.1:1883 with no options).
    Broker(BrokerArgs),
    /// Publish a message (not written yet).
    Pub,
    /// Subscribe to topics (not written yet).
    Sub,
    /// Request/response (not written yet).
    Rr,
    /// Load generator (not written yet).
    Bench,
    /// Manage a password file (not written yet).
    Passwd,
}

#[derive(Args)]
struct BrokerArgs {
    /// Configuration file (TOML); see pigeon.example.toml.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Port for MQTT over TCP (overrides the file).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Address to listen on (overrides the file).
    #[arg(long = "bind")]
    bind: Option<IpAddr>,
    /// Directory for durable state (overrides the file).
    #[arg(long = "data-dir")]
    data_dir: Option<PathBuf>,
    /// When acknowledged state reaches the disk: sync, batch or memory
    /// (overrides the file).
    #[arg(long = "durability", value_parser = parse_durability)]
    durability: Option<Durability>,
    /// Log every connection and protocol error.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Check the configuration and exit.
    #[arg(long = "test-config")]
    test_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Broker(args) => run_broker(args),
        other => {
            let name = match other {
                Command::Pub => "pub",
                Command::Sub => "sub",
                Command::Rr => "rr",
                Command::Bench => "bench",
                _ => "passwd",
            };
            eprintln!("pigeon {name}: not implemented yet; use mosquitto_{name} for now");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pigeon: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(args: &BrokerArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            Config::from_toml(&text).with_context(|| path.display().to_string())?
        }
        None => Config::default(),
    };
    if let Some(port) = args.port {
        config.listen.set_port(port);
    }
    if let Some(bind) = args.bind {
        config.listen = SocketAddr::new(bind, config.listen.port());
    }
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(durability) = args.durability {
        config.durability = durability;
    }
    config.validate()?;
    Ok(config)
}

fn run_broker(args: BrokerArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    if args.test_config {
        println!("configuration ok");
        return Ok(());
    }
    let level = if args.verbose { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("pigeon={level},pigeon_broker={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    // Opening the store reads back every session and queued message.
    let store = open_store(&config)?;
    let auth = Box::new(DefaultPolicy {
        allow_anonymous: config.allow_anonymous,
    });
    let broker = Broker::start_with(config, store, auth)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (is another broker running? try -p PORT)")
        })?;
    println!(
        "pigeon broker {}: MQTT on {}",
        env!("CARGO_PKG_VERSION"),
        broker.local_addr()
    );
    println!("durability: {}", broker.store_description());
    shutdown_signal().await;
    println!("shutting down");
    broker.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    match text {
        "sync" => Ok(Durability::Sync),
        "batch" => Ok(Durability::Batch),
        "memory" => Ok(Durability::Memory),
        _ => Err("use sync (fsync before acknowledging), batch or memory".into()),
    }
}
