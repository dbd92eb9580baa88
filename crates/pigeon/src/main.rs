//! The `pigeon` command. The broker and tools are not written yet; until
//! they are, every subcommand says so and exits with status 2, so nobody
//! mistakes it for a working broker.

use std::process::ExitCode;

const USAGE: &str = "usage: pigeon <broker|pub|sub|rr|bench|passwd> [options]";

fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    match command.as_deref() {
        Some("--version" | "-V") => {
            println!("pigeon {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(cmd @ ("broker" | "pub" | "sub" | "rr" | "bench" | "passwd")) => {
            eprintln!(
                "pigeon {cmd}: not implemented yet; today Pigeon ships its protocol core \
                 (crates/proto). Use mosquitto for now."
            );
            ExitCode::from(2)
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
