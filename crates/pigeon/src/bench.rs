//! `pigeon bench`: a load generator (not written yet).

use std::process::ExitCode;

use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> ExitCode {
    eprintln!("pigeon bench: not implemented yet");
    ExitCode::from(2)
}
