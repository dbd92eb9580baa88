//! `pigeon passwd`: writes users to a password file. So far SCRAM-SHA-256
//! secrets (RFC 5803) for MQTT 5 enhanced authentication, with `--scram`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

#[derive(Args)]
pub struct PasswdArgs {
    /// Write a SCRAM-SHA-256 secret (RFC 5803), for `scram_users_file`.
    #[arg(long = "scram")]
    pub scram: bool,
    /// Take the password from the command line instead of standard input.
    #[arg(short = 'b')]
    pub batch: bool,
    /// The file to update (created if missing).
    pub file: PathBuf,
    /// The user name.
    pub user: String,
    /// The password (with -b).
    pub password: Option<String>,
}

pub fn run(args: PasswdArgs) -> anyhow::Result<()> {
    use pigeon_broker::auth::scram::{ScramSecret, DEFAULT_ITERATIONS};
    if !args.scram {
        anyhow::bail!(
            "only SCRAM-SHA-256 users so far: add --scram (pigeon passwd --scram FILE USER)"
        );
    }
    if args.user.is_empty() || args.user.contains([':', '\n']) {
        anyhow::bail!("the user name must be non-empty and hold no ':' or newline");
    }
    let password = match (args.batch, args.password) {
        (true, Some(p)) => p,
        (true, None) => anyhow::bail!("-b needs the password after the user name"),
        (false, Some(_)) => anyhow::bail!("a password on the command line needs -b"),
        (false, None) => {
            if std::io::stdin().is_terminal() {
                eprint!("password for {}: ", args.user);
            }
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    if password.is_empty() {
        anyhow::bail!("empty password refused");
    }
    let existing = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", args.file.display())),
    };
    let prefix = format!("{}:", args.user);
    let mut lines: Vec<String> = existing
        .lines()
        .filter(|l| !l.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    let secret = ScramSecret::new(&password, DEFAULT_ITERATIONS);
    lines.push(format!("{prefix}{}", secret.to_rfc5803()));
    let text = lines.join("\n") + "\n";
    std::fs::write(&args.file, text)
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    Ok(())
}
