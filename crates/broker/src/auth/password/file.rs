//! The password file: its lines, the edits `pigeon passwd` makes, and the
//! atomic write.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::hash::{HashError, PasswordHash, Scheme};

/// Why a user name cannot go into a password file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UserNameError {
    /// Nothing before the `:`.
    #[error("the user name is empty")]
    Empty,
    /// `:` ends the user name in the file.
    #[error("user names must not contain ':' (it separates the name from the password)")]
    Colon,
    /// A line break would split the line.
    #[error("user names must not contain line breaks or other control characters")]
    Control,
    /// The broker trims blanks around the name.
    #[error("user names must not start or end with blanks (the broker would trim them)")]
    Blanks,
    /// The line would read as a comment.
    #[error("user names must not start with '#' (the line would be a comment)")]
    Comment,
}

/// Checks that `name` can be written as `NAME:HASH` and read back as the
/// same name.
pub fn check_user_name(name: &str) -> Result<(), UserNameError> {
    if name.is_empty() {
        Err(UserNameError::Empty)
    } else if name.contains(':') {
        Err(UserNameError::Colon)
    } else if name.chars().any(char::is_control) {
        Err(UserNameError::Control)
    } else if name.trim() != name {
        Err(UserNameError::Blanks)
    } else if name.starts_with('#') {
        Err(UserNameError::Comment)
    } else {
        Ok(())
    }
}

/// What is wrong with one line of a password file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineProblem {
    /// Not a comment, not blank, and no `:`.
    #[error("no ':' between the user name and the password (want USER:HASH)")]
    NoColon,
    /// `:HASH` with no name.
    #[error("no user name before ':'")]
    NoUser,
    /// `USER:` with nothing after.
    #[error("user {user} has no password after ':'")]
    NoPassword {
        /// The user.
        user: String,
    },
    /// The hash does not parse.
    #[error("user {user}: {error}")]
    Hash {
        /// The user.
        user: String,
        /// What is wrong with the hash.
        error: HashError,
    },
    /// A second line for the same user: which one counts would be a guess.
    #[error("user {user} is there twice (first on line {first}); remove one of the lines")]
    Duplicate {
        /// The user.
        user: String,
        /// The line of the first.
        first: usize,
    },
    /// Hashing a plain-text file: this password is already a hash.
    #[error(
        "user {user} already has a hashed password; -U hashes plain-text passwords only \
         (hashing a hash would lock the user out)"
    )]
    AlreadyHashed {
        /// The user.
        user: String,
    },
}

/// Why a password file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordFileError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A line is malformed.
    #[error("{}line {line}: {problem}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Line {
        /// The file, when it was read from one.
        path: Option<PathBuf>,
        /// The line number, from 1.
        line: usize,
        /// What is wrong.
        problem: LineProblem,
    },
    /// A user name that cannot be written.
    #[error("{0}")]
    UserName(#[from] UserNameError),
}

/// A password file: `USER:HASH` lines, `#` comments and blank lines.
///
/// Reading keeps every line; writing gives them back in the same order,
/// byte for byte except for the users that were changed (and line endings,
/// which become `\n`).
#[derive(Clone, Default)]
pub struct PasswordFile {
    lines: Vec<Line>,
}

#[derive(Clone)]
enum Line {
    /// A comment or blank line, as written.
    Text(String),
    /// A user, with its line as written (or as made when it was set).
    User {
        name: String,
        hash: PasswordHash,
        text: String,
    },
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users().collect::<Vec<_>>())
            .finish()
    }
}

/// What a line holds, before its password is looked at.
enum Parsed<'a> {
    Text,
    User { name: &'a str, password: &'a str },
}

/// Splits a line as mosquitto's broker does: `#` starts a comment, the
/// name ends at the first `:`, blanks around name and password are
/// dropped. (mosquitto also skips lines without `:`; they are errors here,
/// as they are most likely a mistake.)
fn split_line(raw: &str) -> Result<Parsed<'_>, LineProblem> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Parsed::Text);
    }
    let (name, password) = line.split_once(':').ok_or(LineProblem::NoColon)?;
    let (name, password) = (name.trim(), password.trim());
    if name.is_empty() {
        return Err(LineProblem::NoUser);
    }
    if password.is_empty() {
        return Err(LineProblem::NoPassword {
            user: name.to_owned(),
        });
    }
    Ok(Parsed::User { name, password })
}

impl PasswordFile {
    /// An empty file.
    pub fn new() -> PasswordFile {
        PasswordFile::default()
    }

    /// Reads a file's text. Every user line must hold a hash this module
    /// reads, and no user may appear twice.
    pub fn parse(text: &str) -> Result<PasswordFile, PasswordFileError> {
        PasswordFile::parse_with(text, None, None)
    }

    /// Reads the file at `path` (see [`PasswordFile::parse`]).
    pub fn read(path: &Path) -> Result<PasswordFile, PasswordFileError> {
        PasswordFile::parse_with(&read_text(path)?, Some(path), None)
    }

    /// Hashes a plain-text `USER:PASSWORD` file's passwords with `scheme`
    /// (mosquitto_passwd -U). Blanks around a password are dropped, as the
    /// broker drops them when it reads a plain-text file. A password that
    /// is already a hash is refused: hashing it would lock its user out.
    pub fn parse_plain(text: &str, scheme: Scheme) -> Result<PasswordFile, PasswordFileError> {
        PasswordFile::parse_with(text, None, Some(scheme))
    }

    /// Reads and hashes a plain-text file (see [`PasswordFile::parse_plain`]).
    pub fn read_plain(path: &Path, scheme: Scheme) -> Result<PasswordFile, PasswordFileError> {
        PasswordFile::parse_with(&read_text(path)?, Some(path), Some(scheme))
    }

    /// The lines of `text`. With `plain`, passwords are plain text to be
    /// hashed with that scheme; without, they are hashes.
    fn parse_with(
        text: &str,
        path: Option<&Path>,
        plain: Option<Scheme>,
    ) -> Result<PasswordFile, PasswordFileError> {
        let mut file = PasswordFile::new();
        for (index, raw) in text.lines().enumerate() {
            let at = |problem| PasswordFileError::Line {
                path: path.map(Path::to_path_buf),
                line: index + 1,
                problem,
            };
            let (name, password) = match split_line(raw).map_err(at)? {
                Parsed::Text => {
                    file.lines.push(Line::Text(raw.to_owned()));
                    continue;
                }
                Parsed::User { name, password } => (name, password),
            };
            let user = name.to_owned();
            if let Some(first) = file.position(name) {
                return Err(at(LineProblem::Duplicate {
                    user,
                    first: first + 1,
                }));
            }
            let line = match plain {
                None => match PasswordHash::parse(password) {
                    Ok(hash) => Line::User {
                        name: user,
                        hash,
                        text: raw.to_owned(),
                    },
                    Err(error) => return Err(at(LineProblem::Hash { user, error })),
                },
                Some(_) if PasswordHash::looks_hashed(password) => {
                    return Err(at(LineProblem::AlreadyHashed { user }))
                }
                Some(scheme) => match PasswordHash::new(password.as_bytes(), scheme) {
                    Ok(hash) => Line::User {
                        text: format!("{user}:{hash}"),
                        name: user,
                        hash,
                    },
                    Err(error) => return Err(at(LineProblem::Hash { user, error })),
                },
            };
            file.lines.push(line);
        }
        Ok(file)
    }

    fn position(&self, user: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| matches!(line, Line::User { name, .. } if name == user))
    }

    /// The hash of `user`, if the file has that user.
    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.lines.iter().find_map(|line| match line {
            Line::User { name, hash, .. } if name == user => Some(hash),
            _ => None,
        })
    }

    /// Whether `user` is in the file with this password. For a user who is
    /// not, a made-up argon2id hash is checked all the same, so that the
    /// time taken does not tell which user names exist.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                if let Some(decoy) = decoy() {
                    let _ = decoy.verify(password);
                }
                false
            }
        }
    }

    /// Sets `user`'s hash: in place if the user is there, else at the end.
    /// Returns whether the user was there.
    pub fn set(&mut self, user: &str, hash: PasswordHash) -> Result<bool, UserNameError> {
        check_user_name(user)?;
        let line = Line::User {
            name: user.to_owned(),
            text: format!("{user}:{hash}"),
            hash,
        };
        match self.position(user) {
            Some(index) => {
                self.lines[index] = line;
                Ok(true)
            }
            None => {
                self.lines.push(line);
                Ok(false)
            }
        }
    }

    /// Removes `user`; returns whether the user was there.
    pub fn remove(&mut self, user: &str) -> bool {
        match self.position(user) {
            Some(index) => {
                self.lines.remove(index);
                true
            }
            None => false,
        }
    }

    /// The users, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|line| match line {
            Line::User { name, .. } => Some(name.as_str()),
            Line::Text(_) => None,
        })
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users().count()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the file at `path` with this one (see
    /// [`write_secret_file`]).
    pub fn write(&self, path: &Path) -> Result<(), PasswordFileError> {
        write_secret_file(path, self.to_string().as_bytes()).map_err(|error| {
            PasswordFileError::Write {
                path: path.to_path_buf(),
                error,
            }
        })
    }
}

impl fmt::Display for PasswordFile {
    /// The file's text: every line, each ending in `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            let text = match line {
                Line::Text(text) | Line::User { text, .. } => text,
            };
            writeln!(f, "{text}")?;
        }
        Ok(())
    }
}

fn read_text(path: &Path) -> Result<String, PasswordFileError> {
    std::fs::read_to_string(path).map_err(|error| PasswordFileError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// A hash to check passwords of unknown users against, made once.
fn decoy() -> Option<&'static PasswordHash> {
    static DECOY: OnceLock<Option<PasswordHash>> = OnceLock::new();
    DECOY
        .get_or_init(|| {
            let mut password = [0u8; 16];
            getrandom::fill(&mut password).ok()?;
            PasswordHash::new(&password, Scheme::ARGON2ID).ok()
        })
        .as_ref()
}

/// Replaces the file at `path` with `contents`, atomically: the bytes go
/// to a new file beside it, reach the disk, and the new file is renamed
/// over the old, so a reader sees the old file or the new one, never a
/// part. A symbolic link is followed: its target is replaced.
///
/// On unix a new file gets mode 0600. A replaced file keeps its mode, owner
/// and group (when the caller may set them): a broker that runs as another
/// user (Debian's mosquitto drops to user `mosquitto`) must still read the
/// file after an edit, however the administrator arranged that.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let target = match std::fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let name = target
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let previous = std::fs::metadata(&target).ok();
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(std::io::Error::other)?;
    let temp = dir.join(format!(
        ".{}.{:016x}.tmp",
        name.to_string_lossy(),
        u64::from_le_bytes(suffix)
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        set_access(&file, previous.as_ref())?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, &target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written?;
    // The rename reaches the disk with the directory; if the directory
    // cannot be synced the file is still complete, so that is not an error.
    if let Ok(dir) = std::fs::File::open(&dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Gives the new file the old one's owner, group and mode, or mode 0600.
#[cfg(unix)]
fn set_access(file: &std::fs::File, previous: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = match previous {
        Some(meta) => {
            // Best effort: only root may give a file away.
            let _ = std::os::unix::fs::fchown(file, Some(meta.uid()), Some(meta.gid()));
            meta.mode() & 0o777
        }
        None => 0o600,
    };
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

/// Elsewhere the new file gets the directory's defaults.
#[cfg(not(unix))]
fn set_access(_: &std::fs::File, _: Option<&std::fs::Metadata>) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::password::vectors::*;

    fn line_error(text: &str) -> (usize, String) {
        match PasswordFile::parse(text) {
            Err(PasswordFileError::Line { line, problem, .. }) => (line, problem.to_string()),
            other => panic!("{text:?}: expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn mosquitto_2_0_hashes_verify_the_right_password_only() {
        let file = PasswordFile::parse(MOSQUITTO_FILE).unwrap();
        assert_eq!(
            file.users().collect::<Vec<_>>(),
            ["alice", "bob", "carol", "dave"]
        );
        for (user, password) in [
            ("alice", "correct horse"),
            ("bob", "correct horse"),
            ("carol", "pässwörd"),
            ("dave", "pässwörd"),
        ] {
            assert!(file.verify(user, password.as_bytes()), "{user}");
            assert!(!file.verify(user, b"correct horse "), "{user}");
            assert!(!file.verify(user, b""), "{user}");
        }
        assert_eq!(file.get("alice").unwrap().scheme(), Scheme::Sha512);
        assert_eq!(
            file.get("bob").unwrap().scheme(),
            Scheme::Sha512Pbkdf2 { iterations: 101 }
        );
        assert!(!file.verify("nobody", b"correct horse"));
        assert_eq!(file.to_string(), MOSQUITTO_FILE);
    }

    #[test]
    fn every_scheme_round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let mut file = PasswordFile::new();
        for (user, scheme) in [
            ("argon", CHEAP),
            ("pbkdf2", Scheme::SHA512_PBKDF2),
            ("sha", Scheme::Sha512),
        ] {
            let hash = PasswordHash::new(user.as_bytes(), scheme).unwrap();
            assert_eq!(hash.scheme(), scheme);
            assert!(!file.set(user, hash).unwrap());
        }
        file.write(&path).unwrap();
        let read = PasswordFile::read(&path).unwrap();
        assert_eq!(read.to_string(), file.to_string());
        for user in ["argon", "pbkdf2", "sha"] {
            assert!(read.verify(user, user.as_bytes()), "{user}");
            assert!(!read.verify(user, b"wrong"), "{user}");
        }
        assert!(read.to_string().contains("pbkdf2:$7$1000$"));
    }

    #[test]
    fn editing_keeps_comments_order_and_untouched_lines() {
        let text = format!("# users\n\n{MOSQUITTO_FILE}  # an indented comment\n");
        let mut file = PasswordFile::parse(&text).unwrap();
        let hash = PasswordHash::new(b"new", CHEAP).unwrap();
        assert!(file.set("bob", hash.clone()).unwrap());
        assert!(file.remove("carol"));
        assert!(!file.remove("carol"));
        assert!(!file.set("erin", hash.clone()).unwrap());
        let lines: Vec<String> = file.to_string().lines().map(str::to_owned).collect();
        let original: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..3], original[..3]);
        assert_eq!(lines[3], format!("bob:{hash}"));
        assert_eq!(lines[4], original[5]);
        assert_eq!(lines[5], original[6]);
        assert_eq!(lines[6], format!("erin:{hash}"));
        assert_eq!(lines.len(), 7);
        assert!(file.verify("bob", b"new"));
        assert!(file.verify("alice", b"correct horse"));
        assert_eq!(file.len(), 4);
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        let good = MOSQUITTO_FILE.lines().next().unwrap();
        for (text, line, problem) in [
            (
                "# c\nalice\n",
                2,
                "no ':' between the user name and the password",
            ),
            ("\n:$6$x$y\n", 2, "no user name before ':'"),
            ("alice:\n", 1, "user alice has no password after ':'"),
            ("alice:secret\n", 1, "user alice: not a password hash"),
            ("#\n#\nalice:$7$101$c2FsdA==\n", 3, "user alice: malformed"),
        ] {
            let (at, message) = line_error(text);
            assert_eq!(at, line, "{text:?}: {message}");
            assert!(message.contains(problem), "{text:?}: {message}");
        }
        let (at, message) = line_error(&format!("{good}\n\n{good}\n"));
        assert_eq!(at, 3);
        assert!(
            message.contains("alice is there twice (first on line 1)"),
            "{message}"
        );
        let error = PasswordFile::parse("alice:$6$c2FsdA==\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1: user alice: malformed sha512 ($6$) hash: want $6$SALT$HASH"
        );
    }

    #[test]
    fn a_read_error_names_the_file_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "# ok\nalice:plain\n").unwrap();
        let message = PasswordFile::read(&path).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}: line 2: user alice: ", path.display())),
            "{message}"
        );
        let missing = PasswordFile::read(&dir.path().join("nope")).unwrap_err();
        assert!(
            matches!(missing, PasswordFileError::Read { .. }),
            "{missing}"
        );
    }

    #[test]
    fn plain_text_files_are_hashed_and_hashed_lines_refused() {
        let text = "# plain\nalice: correct horse \n\nbob:pencil\n";
        let file = PasswordFile::parse_plain(text, CHEAP).unwrap();
        assert!(file.verify("alice", b"correct horse"));
        assert!(file.verify("bob", b"pencil"));
        let written = file.to_string();
        assert!(written.starts_with("# plain\nalice:$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(written.lines().nth(2), Some(""));
        // Hashing again would hash the hashes: refused, naming the line.
        match PasswordFile::parse_plain(&written, CHEAP) {
            Err(PasswordFileError::Line {
                line: 2, problem, ..
            }) => {
                assert_eq!(
                    problem,
                    LineProblem::AlreadyHashed {
                        user: "alice".into()
                    }
                )
            }
            other => panic!("{other:?}"),
        }
        let (at, _) = match PasswordFile::parse_plain("a:x\na:y\n", CHEAP) {
            Err(PasswordFileError::Line { line, problem, .. }) => (line, problem),
            other => panic!("{other:?}"),
        };
        assert_eq!(at, 2);
    }

    #[test]
    fn user_names_that_would_not_read_back_are_refused() {
        let hash = PasswordHash::new(b"x", Scheme::Sha512).unwrap();
        let mut file = PasswordFile::new();
        for (name, error) in [
            ("", UserNameError::Empty),
            ("a:b", UserNameError::Colon),
            ("a\nb", UserNameError::Control),
            (" alice", UserNameError::Blanks),
            ("#alice", UserNameError::Comment),
        ] {
            assert_eq!(file.set(name, hash.clone()), Err(error), "{name:?}");
        }
        assert!(file.is_empty());
        assert_eq!(file.set("a b#c", hash), Ok(false));
    }

    #[cfg(unix)]
    #[test]
    fn written_files_are_private_and_replaced_whole() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        write_secret_file(&path, b"one\n").unwrap();
        assert_eq!(mode(&path), 0o600);
        // A replaced file keeps its mode, so that whoever read it still can.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_secret_file(&path, b"two\n").unwrap();
        assert_eq!(mode(&path), 0o640);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        // A link stays a link; its target is replaced.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        write_secret_file(&link, b"three\n").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2);
    }
}
