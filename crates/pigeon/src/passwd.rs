//! `pigeon passwd`: mosquitto_passwd's interface, for mosquitto-format
//! password files (`USER:HASH` lines), and `--scram` for the separate
//! SCRAM-SHA-256 users file (RFC 5803 secrets).
//!
//! The arguments are checked first, then the file is read (so a bad file
//! is reported before anyone types a password), then the password is asked
//! for, and last the whole file is written to a new file that is renamed
//! over the old one. Every failure is one line and exit status 1, and
//! leaves the file as it was.
//!
//! Hashing, the file format and the atomic write live in
//! `pigeon_broker::auth::password`, which the broker uses to check logins.
//!
//! Where this differs from Debian's mosquitto_passwd 2.0.11, on purpose:
//! the default hash is argon2id (as in mosquitto 2.1); comments and blank
//! lines are kept (2.0.11 calls the file corrupt at the first one and,
//! when adding a user, drops that line and every line after it, exiting
//! 0); `-U` refuses a file that is already hashed (2.0.11 hashes the
//! hashes, locking every user out); empty passwords and user names that
//! would not read back (leading `#`, surrounding blanks) are refused.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use pigeon_broker::auth::password::{
    check_user_name, write_secret_file, PasswordFile, PasswordFileError, PasswordHash, Scheme,
    PBKDF2_ITERATIONS,
};

#[derive(Args)]
#[command(
    override_usage = "pigeon passwd [-H argon2id|sha512-pbkdf2|sha512] [-c | -D] FILE USER
       pigeon passwd [-H argon2id|sha512-pbkdf2|sha512] [-c] -b FILE USER PASSWORD
       pigeon passwd -U FILE
       pigeon passwd --scram [-c | -D] [-b] FILE USER [PASSWORD]",
    after_help = "\
Without -b the password is asked for twice on the terminal, without echo. When standard \
input is not a terminal, its first line is the password, and a second line, if there is \
one, must match it.

Hashes: argon2id (t=1, m=47104 KiB, p=1: mosquitto 2.1's parameters and OWASP's) is read \
by mosquitto 2.1 and later and by pigeon; use -H sha512-pbkdf2 for a file that mosquitto \
2.0 must read as well. sha512 is a single salted SHA-512, for mosquitto 1.6 and older.

The file is replaced atomically; an existing file keeps its mode, owner and group. A new \
file gets mode 0600: a broker that runs as another user (Debian's mosquitto runs as user \
mosquitto) can read it once it owns it (chown mosquitto FILE)."
)]
pub struct PasswdArgs {
    /// How to hash new passwords: argon2id (the default), sha512-pbkdf2
    /// (readable by mosquitto 2.0) or sha512 (mosquitto 1.6 and older).
    #[arg(short = 'H', value_name = "HASH")]
    pub hash: Option<String>,
    /// PBKDF2 iterations with -H sha512-pbkdf2 (default 1000, as mosquitto
    /// 2.1; 2.0.11 wrote 101).
    #[arg(short = 'I', value_name = "ITERATIONS")]
    pub iterations: Option<String>,
    /// Create a new password file. An existing file is overwritten, as
    /// mosquitto_passwd does: the users it had are gone.
    #[arg(short = 'c')]
    pub create: bool,
    /// Delete the user instead of setting a password.
    #[arg(short = 'D')]
    pub delete: bool,
    /// Batch mode: the password is the last argument (it shows up in the
    /// process list and the shell's history).
    #[arg(short = 'b')]
    pub batch: bool,
    /// Hash the passwords of a plain-text USER:PASSWORD file in place.
    /// Unlike mosquitto_passwd, a file with hashed lines is refused rather
    /// than hashed again (which would lock those users out).
    #[arg(short = 'U')]
    pub update: bool,
    /// Write a SCRAM-SHA-256 secret (RFC 5803) to a `scram_users_file`
    /// instead (a separate file; created if missing).
    #[arg(long = "scram")]
    pub scram: bool,
    /// The password file.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The user name (no ':').
    #[arg(value_name = "USER")]
    pub user: Option<String>,
    /// The password, with -b.
    #[arg(value_name = "PASSWORD", allow_hyphen_values = true)]
    pub password: Option<String>,
}

/// What the arguments ask for.
enum Job {
    /// Set a user's password (`-c`: in a new file).
    Set {
        file: PathBuf,
        user: String,
        /// From the command line (-b); else asked for.
        password: Option<String>,
        create: bool,
        format: Format,
    },
    /// Remove a user (-D).
    Delete {
        file: PathBuf,
        user: String,
        format: Format,
    },
    /// Hash a plain-text file in place (-U).
    HashPlain { file: PathBuf, scheme: Scheme },
}

/// Which kind of file.
#[derive(Clone, Copy)]
enum Format {
    /// mosquitto's, hashing new passwords with this scheme.
    Mosquitto(Scheme),
    /// RFC 5803 SCRAM-SHA-256 secrets.
    Scram,
}

/// Runs `pigeon passwd`.
pub fn run(args: PasswdArgs) -> anyhow::Result<()> {
    match job(args)? {
        Job::Set {
            file,
            user,
            password,
            create,
            format: Format::Mosquitto(scheme),
        } => {
            let mut passwords = match create {
                true => PasswordFile::new(),
                false => read(&file)?,
            };
            let password = password_or_ask(password)?;
            let hash = PasswordHash::new(password.as_bytes(), scheme)?;
            passwords.set(&user, hash)?;
            save(&passwords, &file)
        }
        Job::Delete {
            file,
            user,
            format: Format::Mosquitto(_),
        } => {
            let mut passwords = read(&file)?;
            if !passwords.remove(&user) {
                bail!("user {user} is not in {}; nothing changed", file.display());
            }
            save(&passwords, &file)
        }
        Job::HashPlain { file, scheme } => {
            let passwords = PasswordFile::read_plain(&file, scheme).map_err(missing_file)?;
            save(&passwords, &file)
        }
        Job::Set {
            file,
            user,
            password,
            create,
            format: Format::Scram,
        } => {
            let text = match create {
                true => String::new(),
                false => read_scram(&file)?,
            };
            let password = password_or_ask(password)?;
            let secret = pigeon_broker::auth::scram::ScramSecret::new(
                &password,
                pigeon_broker::auth::scram::DEFAULT_ITERATIONS,
            );
            let (mut lines, _) = without_user(&text, &user);
            lines.push(format!("{user}:{}", secret.to_rfc5803()));
            write_lines(&file, &lines)
        }
        Job::Delete {
            file,
            user,
            format: Format::Scram,
        } => {
            let (lines, found) = without_user(&read_scram(&file)?, &user);
            if !found {
                bail!("user {user} is not in {}; nothing changed", file.display());
            }
            write_lines(&file, &lines)
        }
    }
}

/// Checks the arguments as mosquitto_passwd does, each mistake one line.
fn job(args: PasswdArgs) -> anyhow::Result<Job> {
    let Some(file) = args.file else {
        bail!("give the password file and the user: pigeon passwd [-c] FILE USER (see --help)");
    };
    if args.create && args.delete {
        bail!("-c and -D cannot be used together");
    }
    if args.update {
        if args.create || args.delete || args.batch || args.scram || args.user.is_some() {
            bail!("-U takes only the password file: pigeon passwd -U FILE");
        }
        return Ok(Job::HashPlain {
            file,
            scheme: scheme(args.hash.as_deref(), args.iterations.as_deref())?,
        });
    }
    let format = match args.scram {
        true if args.hash.is_some() || args.iterations.is_some() => {
            bail!("--scram writes SCRAM-SHA-256 secrets: -H and -I do not apply")
        }
        true => Format::Scram,
        false => Format::Mosquitto(scheme(args.hash.as_deref(), args.iterations.as_deref())?),
    };
    let Some(user) = args.user else {
        bail!(
            "give the user name after the file: pigeon passwd {} USER",
            file.display()
        );
    };
    check_user_name(&user).map_err(|e| anyhow::anyhow!("{e}: {user:?}"))?;
    if args.delete {
        if args.batch || args.password.is_some() {
            bail!("-D deletes the user and takes no password");
        }
        return Ok(Job::Delete { file, user, format });
    }
    let password = match (args.batch, args.password) {
        (true, None) => {
            bail!("-b needs the password after the user name: pigeon passwd -b FILE USER PASSWORD")
        }
        (false, Some(_)) => {
            bail!("a password on the command line needs -b (or leave it out to be asked for it)")
        }
        (_, password) => password,
    };
    Ok(Job::Set {
        file,
        user,
        password,
        create: args.create,
        format,
    })
}

/// The scheme `-H` and `-I` name.
fn scheme(name: Option<&str>, iterations: Option<&str>) -> anyhow::Result<Scheme> {
    let scheme = match name {
        None => Scheme::default(),
        Some(name) => Scheme::from_name(name).with_context(|| {
            format!(
                "unknown hash type {name:?}: use argon2id (the default), sha512-pbkdf2 \
                 (readable by mosquitto 2.0) or sha512"
            )
        })?,
    };
    match (scheme, iterations) {
        (_, None) => Ok(scheme),
        (Scheme::Sha512Pbkdf2 { .. }, Some(text)) => match text.parse::<u32>() {
            Ok(iterations) if iterations > 0 => Ok(Scheme::Sha512Pbkdf2 { iterations }),
            _ => bail!(
                "-I wants a positive number of PBKDF2 iterations (default {PBKDF2_ITERATIONS}), \
                 not {text:?}"
            ),
        },
        _ => bail!("-I sets PBKDF2 iterations: use it with -H sha512-pbkdf2"),
    }
}

/// Reads a mosquitto password file; a missing one needs -c.
fn read(file: &Path) -> anyhow::Result<PasswordFile> {
    PasswordFile::read(file).map_err(missing_file)
}

/// Says what to do about a missing file; other errors as they are.
fn missing_file(error: PasswordFileError) -> anyhow::Error {
    match error {
        PasswordFileError::Read { path, error } if error.kind() == std::io::ErrorKind::NotFound => {
            anyhow::anyhow!("{} does not exist: add -c to create it", path.display())
        }
        other => other.into(),
    }
}

/// Writes the file, with a note when every user on the machine can read it.
fn save(passwords: &PasswordFile, file: &Path) -> anyhow::Result<()> {
    passwords.write(file)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).map(|m| m.permissions().mode());
        if mode.is_ok_and(|mode| mode & 0o004 != 0) {
            eprintln!(
                "pigeon: note: every user can read {0}; once the broker's user owns it: \
                 chmod o-rwx {0}",
                file.display()
            );
        }
    }
    Ok(())
}

/// The password from -b, or asked for.
fn password_or_ask(password: Option<String>) -> anyhow::Result<String> {
    let password = match password {
        Some(password) => password,
        None => ask_password()?,
    };
    if password.is_empty() {
        bail!("empty password refused");
    }
    Ok(password)
}

/// Asks twice on the terminal, without echo; or reads standard input when
/// it is not a terminal (one line, or two that match).
fn ask_password() -> anyhow::Result<String> {
    let (first, again) = if std::io::stdin().is_terminal() {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt).context("cannot read the password from the terminal")
        };
        let first = ask("Password: ")?;
        (first, Some(ask("Reenter password: ")?))
    } else {
        let mut lines = std::io::stdin().lock().lines();
        let mut next = || {
            lines
                .next()
                .transpose()
                .context("cannot read the password from standard input")
        };
        let first = next()?.unwrap_or_default();
        (first, next()?)
    };
    if again.is_some_and(|again| again != first) {
        bail!("the passwords do not match; nothing changed");
    }
    Ok(first)
}

/// The SCRAM users file's text; a missing file is empty (it is created).
fn read_scram(file: &Path) -> anyhow::Result<String> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// The lines of `text` other than `user`'s, and whether there was one.
fn without_user(text: &str, user: &str) -> (Vec<String>, bool) {
    let prefix = format!("{user}:");
    let (theirs, others): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with(&prefix));
    (
        others.into_iter().map(str::to_owned).collect(),
        !theirs.is_empty(),
    )
}

fn write_lines(file: &Path, lines: &[String]) -> anyhow::Result<()> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    write_secret_file(file, text.as_bytes())
        .with_context(|| format!("cannot write {}", file.display()))
}
