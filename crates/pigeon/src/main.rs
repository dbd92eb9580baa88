//! The `pigeon` command. `pigeon broker` runs the broker; `pigeon pub`,
//! `sub` and `rr` are mosquitto_pub, mosquitto_sub and mosquitto_rr with
//! the same flags, output and exit codes (`tools`); `pigeon passwd` is
//! mosquitto_passwd (argon2id, and SCRAM-SHA-256 users with `--scram`);
//! `bench` generates load (`bench`).

mod bench;
mod format;
mod passwd;
mod tools;

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
    /// Publish a message (mosquitto_pub's flags).
    #[command(disable_help_flag = true)]
    Pub(tools::publish::PubArgs),
    /// Subscribe and print messages (mosquitto_sub's flags).
    #[command(disable_help_flag = true)]
    Sub(tools::subscribe::SubArgs),
    /// Send a request and print the response (mosquitto_rr's flags, MQTT 5).
    #[command(disable_help_flag = true)]
    Rr(tools::rr::RrArgs),
    /// Load generator: connections, publishers, subscribers, scenarios.
    Bench(bench::BenchArgs),
    /// Add, change or delete users in a password file (mosquitto_passwd's
    /// flags; argon2id by default, reads mosquitto's $6$/$7$ hashes).
    Passwd(passwd::PasswdArgs),
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
    // Bad arguments exit 1, as mosquitto's tools do (clap's own is 2).
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.use_stderr() {
                true => ExitCode::from(1),
                false => ExitCode::SUCCESS,
            };
        }
    };
    let result = match cli.command {
        Command::Broker(args) => run_broker(args),
        Command::Passwd(args) => passwd::run(args),
        Command::Pub(args) => {
            QUIET.store(args.common.quiet, std::sync::atomic::Ordering::Relaxed);
            return run_tool(tools::publish::run(args));
        }
        Command::Sub(args) => {
            QUIET.store(args.common.quiet, std::sync::atomic::Ordering::Relaxed);
            return run_tool(tools::subscribe::run(args));
        }
        Command::Rr(args) => {
            QUIET.store(args.common.quiet, std::sync::atomic::Ordering::Relaxed);
            return run_tool(tools::rr::run(args));
        }
        Command::Bench(args) => return bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pigeon: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs a client tool; its failure is one stderr line and mosquitto's exit
/// code.
fn run_tool(tool: impl std::future::Future<Output = tools::Outcome>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(tool) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.always || !QUIET.load(std::sync::atomic::Ordering::Relaxed) {
                eprintln!("{}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// `--quiet` was given (runtime errors are not printed).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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
    // With nothing configured, MQTT over WebSocket too (as the quick
    // start's browser clients expect); `-p` alone means that one listener,
    // as mosquitto does, so brokers can run side by side.
    if args.config.is_none() && args.port.is_none() && args.bind.is_none() {
        config
            .listeners
            .push(pigeon_broker::config::ListenerConfig::default_websocket());
    }
    config.validate()?;
    Ok(config)
}

fn run_broker(args: BrokerArgs) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    // Certificates, password, SCRAM and ACL files: --test-config checks
    // them all, and a bad one stops the start with one line.
    pigeon_broker::check_files(&config)?;
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
    runtime.block_on(serve(config, &args))
}

async fn serve(config: Config, args: &BrokerArgs) -> anyhow::Result<()> {
    let listen = config.listen;
    let anonymous = match config.anonymous_allowed(listen, None) {
        true => "anonymous clients allowed",
        false => "user name required",
    };
    // Opening the store reads back every session and queued message.
    let store = open_store(&config)?;
    let auth = Box::new(DefaultPolicy::from_config(&config)?);
    let broker = Broker::start_with(config, store, auth)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} (is another broker running? try -p PORT)")
        })?;
    println!(
        "pigeon broker {}: MQTT on {} ({anonymous})",
        env!("CARGO_PKG_VERSION"),
        broker.local_addr()
    );
    for (what, at) in broker.listeners() {
        println!("{what} on {at}");
    }
    println!("durability: {}", broker.store_description());
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = hangup() => reload(&broker, args),
        }
    }
    println!("shutting down");
    broker.shutdown().await;
    Ok(())
}

/// SIGHUP (never, where there is none).
async fn hangup() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            hup.recv().await;
            return;
        }
    }
    std::future::pending::<()>().await;
}

/// SIGHUP: certificates, keys and the password file are read again from
/// the configuration file; what fails keeps its old state, and says so.
fn reload(broker: &Broker, args: &BrokerArgs) {
    let config = match load_config(args) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {e:#}");
            return;
        }
    };
    let errors = broker.reload(&config);
    for e in &errors {
        tracing::error!("reload: {e}; the old one stays");
    }
    if errors.is_empty() {
        tracing::info!("reloaded certificates, password files and ACLs");
    }
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
