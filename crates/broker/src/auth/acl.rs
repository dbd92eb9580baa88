//! Access control lists in mosquitto's `acl_file` syntax.
//!
//! ```text
//! # comments only at the start of a line
//! topic read public/#          # anonymous clients (before the first `user`)
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! pattern write devices/%c/state   # every client; %c client id, %u user name
//! ```
//!
//! A `deny` rule that matches wins over any grant; otherwise access needs a
//! `read`, `write` or `readwrite` (the default) rule of the client's own
//! section (`user NAME`, or the anonymous section before the first `user`
//! line) or a `pattern`. In a pattern, `%u` and `%c` are whole topic
//! levels, and stand only for a name that is one plain level: a client
//! called `+` or `a/b` gets no grant from a pattern, and a deny pattern it
//! cannot fill denies it everything. A mistyped access word is an error,
//! never part of a topic. An empty file denies everything (CVE-2018-12550),
//! and `#` at the first level never covers `$SYS` (MQTT-4.7.2-1), so
//! `$SYS` is readable only where a rule names it.
//!
//! Publishing checks the topic name for write; subscribing checks that a
//! read rule covers the whole filter (`a/#` covers `a/+/b`, `a/+` does not
//! cover `a/#`); every delivery, retained ones included, checks the topic
//! name for read, so a revoked right stops messages to durable
//! subscriptions too (CVE-2021-34434).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages published to it.
    Read,
    /// Publish to it.
    Write,
}

/// Who asks: the user name (none for anonymous clients) and client id.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    /// The authenticated user name.
    pub username: Option<&'a str>,
    /// The client identifier.
    pub client_id: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Write,
    ReadWrite,
    Deny,
}

impl Kind {
    fn grants(self, access: Access) -> bool {
        matches!(
            (self, access),
            (Kind::ReadWrite, _) | (Kind::Read, Access::Read) | (Kind::Write, Access::Write)
        )
    }
}

/// One `topic` or `pattern` line.
#[derive(Debug, Clone)]
struct Rule {
    kind: Kind,
    /// The filter's levels (`%u`/`%c` still in them for a pattern).
    levels: Vec<String>,
}

/// A parsed ACL file.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    anonymous: Vec<Rule>,
    users: HashMap<String, Vec<Rule>>,
    patterns: Vec<Rule>,
}

/// A line of an ACL file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for AclError {}

impl AclFile {
    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<AclFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read ({e})"))?;
        AclFile::parse(&text).map_err(|e| e.to_string())
    }

    /// Parses ACL text.
    pub fn parse(text: &str) -> Result<AclFile, AclError> {
        let mut acl = AclFile::default();
        let mut user: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let bad = |message: String| AclError {
                line: i + 1,
                message,
            };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let rest = rest.trim();
            match word {
                "user" if rest.is_empty() => {
                    return Err(bad("`user` needs a user name".into()));
                }
                "user" => {
                    acl.users.entry(rest.to_owned()).or_default();
                    user = Some(rest.to_owned());
                }
                "topic" | "pattern" => {
                    let rule = parse_rule(rest, word == "pattern").map_err(bad)?;
                    let rules = match (word, &user) {
                        ("pattern", _) => &mut acl.patterns,
                        (_, Some(user)) => acl.users.entry(user.clone()).or_default(),
                        (_, None) => &mut acl.anonymous,
                    };
                    rules.push(rule);
                }
                other => {
                    return Err(bad(format!(
                        "unknown directive `{other}` (expected `user`, `topic` or `pattern`; \
                         comments start with `#` at the beginning of a line)"
                    )))
                }
            }
        }
        Ok(acl)
    }

    /// Whether `who` may read or write the topic name `topic`.
    pub fn allows(&self, who: Who<'_>, topic: &str, access: Access) -> bool {
        self.decide(who, Against::Topic(topic), access)
    }

    /// Whether `who` may subscribe to `filter`: a read rule covers all of
    /// it and no deny rule does.
    pub fn allows_subscribe(&self, who: Who<'_>, filter: &str) -> bool {
        let filter: Vec<&str> = filter.split('/').collect();
        self.decide(who, Against::Filter(&filter), Access::Read)
    }

    fn decide(&self, who: Who<'_>, against: Against<'_>, access: Access) -> bool {
        let own = match who.username {
            Some(user) => self.users.get(user).map_or(&[][..], Vec::as_slice),
            None => &self.anonymous,
        };
        let mut granted = false;
        let rules = own.iter().map(|r| (r, false));
        for (rule, pattern) in rules.chain(self.patterns.iter().map(|r| (r, true))) {
            // Only a deny can change the answer once granted, and a rule
            // for the other access never grants.
            let deny = rule.kind == Kind::Deny;
            if !deny && (granted || !rule.kind.grants(access)) {
                continue;
            }
            let applied = match (pattern, against) {
                (false, _) => against.applies(&rule.levels),
                (true, _) => match names(&rule.levels, who) {
                    // No user name: the pattern is not about this client.
                    Names::Missing => false,
                    // A name that is not one plain level (`+`, `#`, `/`,
                    // empty) gets no grant from a pattern, and a deny
                    // pattern that needs it denies everything: fail closed.
                    Names::Unusable => deny,
                    // Delivery checks run for every message: no allocation.
                    Names::Usable => match against {
                        Against::Topic(topic) => matches_pattern(&rule.levels, topic, who),
                        Against::Filter(_) => against.applies(&substitute(&rule.levels, who)),
                    },
                },
            };
            if !applied {
                continue;
            }
            match rule.kind {
                Kind::Deny => return false,
                kind => granted |= kind.grants(access),
            }
        }
        granted
    }
}

/// Who a session belongs to, for the ACL: the user name its client
/// authenticated with and the listener it came in on (each listener may
/// have its own ACL). Kept with the session, on disk too, so messages for
/// an absent client are checked against its rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user name (none: anonymous).
    pub username: Option<Box<str>>,
    /// The listener: `None` for `listen`, else its index in `listeners`.
    /// After a restart, a listener the configuration no longer has is
    /// `Some(usize::MAX)`, which no listener matches.
    pub listener: Option<usize>,
    /// The listener's name as stored: "listen", or its configured address.
    pub listener_name: Arc<str>,
}

impl Identity {
    /// The name a listener is stored under.
    pub fn name_of(listener: Option<usize>, config: &crate::Config) -> Arc<str> {
        match listener.and_then(|i| config.listeners.get(i)) {
            None => "listen".into(),
            Some(l) => l.address.to_string().into(),
        }
    }

    /// The listener a stored name refers to, as `listener` holds it.
    pub fn listener_of(name: &str, config: &crate::Config) -> Option<usize> {
        match name {
            "listen" => None,
            _ => Some(
                config
                    .listeners
                    .iter()
                    .position(|l| l.address.to_string() == name)
                    .unwrap_or(usize::MAX),
            ),
        }
    }
}

/// The ACL files of a configuration: the global one and each listener's.
#[derive(Debug, Default)]
pub struct AclSet {
    /// Distinguishes loads (never 0): a message queued under another
    /// generation is checked again when it is sent.
    pub generation: u64,
    global: Option<AclFile>,
    /// Per listener (index in `config.listeners`): its own file, if any.
    listeners: Vec<Option<AclFile>>,
    /// An empty file: what a session from an unknown listener gets.
    deny_all: AclFile,
}

impl AclSet {
    /// Reads the files `config` names; an error names the key, the file
    /// and the line.
    pub fn load(config: &crate::Config) -> Result<AclSet, crate::ConfigError> {
        let read = |key: String, path: &Path| {
            AclFile::read(path).map_err(|e| crate::ConfigError::Value {
                key,
                value: path.display().to_string(),
                allowed: e,
            })
        };
        let global = match config.acl_file.as_os_str().is_empty() {
            true => None,
            false => Some(read("acl_file".into(), &config.acl_file)?),
        };
        let mut listeners = Vec::with_capacity(config.listeners.len());
        for (i, l) in config.listeners.iter().enumerate() {
            let own = match &l.acl_file {
                Some(path) => Some(read(format!("listeners[{i}].acl_file"), path)?),
                None => None,
            };
            listeners.push(own);
        }
        static LOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(AclSet {
            generation: LOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            global,
            listeners,
            deny_all: AclFile::default(),
        })
    }

    /// Whether any ACL is configured (else nothing is checked).
    pub fn is_active(&self) -> bool {
        self.global.is_some() || self.listeners.iter().any(Option::is_some)
    }

    /// The rules for clients of `listener`: its own file, else the global
    /// one; none means everything is allowed. A listener that is gone (a
    /// session stored before a configuration change) gets "deny all" when
    /// any ACL is configured: it fails closed.
    pub fn rules(&self, listener: Option<usize>) -> Option<&AclFile> {
        match listener {
            None => self.global.as_ref(),
            Some(i) => match self.listeners.get(i) {
                Some(own) => own.as_ref().or(self.global.as_ref()),
                None => self.is_active().then_some(&self.deny_all),
            },
        }
    }

    /// Whether the session of `identity` and `client_id` may read or
    /// write `topic`.
    pub fn allows(
        &self,
        identity: &Identity,
        client_id: &str,
        topic: &str,
        access: Access,
    ) -> bool {
        self.rules(identity.listener).is_none_or(|acl| {
            let who = Who {
                username: identity.username.as_deref(),
                client_id,
            };
            acl.allows(who, topic, access)
        })
    }

    /// Whether the session may subscribe to `filter`.
    pub fn allows_subscribe(&self, identity: &Identity, client_id: &str, filter: &str) -> bool {
        self.rules(identity.listener).is_none_or(|acl| {
            let who = Who {
                username: identity.username.as_deref(),
                client_id,
            };
            acl.allows_subscribe(who, filter)
        })
    }
}

/// What a rule's filter is held against.
#[derive(Clone, Copy)]
enum Against<'a> {
    /// A topic name (publish, delivery): the rule must match it.
    Topic(&'a str),
    /// A subscription's filter: the rule must cover it.
    Filter(&'a [&'a str]),
}

impl Against<'_> {
    fn applies<L: AsRef<str>>(self, levels: &[L]) -> bool {
        match self {
            Against::Topic(topic) => matches_topic(levels, topic),
            Against::Filter(filter) => covers(levels, filter),
        }
    }
}

/// `[read|write|readwrite|deny] FILTER`.
fn parse_rule(rest: &str, pattern: bool) -> Result<Rule, String> {
    let (word, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (kind, filter) = match word {
        "read" => (Kind::Read, after.trim()),
        "write" => (Kind::Write, after.trim()),
        "readwrite" => (Kind::ReadWrite, after.trim()),
        "deny" => (Kind::Deny, after.trim()),
        // A mistyped access word must not become part of a topic (a
        // `Deny` that silently grants readwrite).
        _ if !after.trim().is_empty() => {
            return Err(format!(
                "unknown access `{word}`: expected read, write, readwrite or deny"
            ))
        }
        _ => (Kind::ReadWrite, rest),
    };
    if filter.is_empty() {
        return Err("a `topic`/`pattern` line needs a topic filter".into());
    }
    let levels: Vec<String> = filter.split('/').map(str::to_owned).collect();
    let partial = |l: &str| l.contains("%u") || l.contains("%c");
    if pattern && levels.iter().any(|l| partial(l) && l != "%u" && l != "%c") {
        // `d/%c-%u` would let user `ann` with client id `x-mary` read
        // what is meant for user `mary-ann` with client id `x`.
        return Err(format!(
            "`{filter}`: %u and %c must each be a whole topic level, e.g. `devices/%c/state`"
        ));
    }
    for (i, level) in levels.iter().enumerate() {
        let wild = level.contains(['+', '#']);
        let valid = match level.as_str() {
            "+" => true,
            "#" => i == levels.len() - 1,
            _ => !wild,
        };
        if !valid {
            return Err(format!(
                "`{filter}` is not a valid topic filter (`+` and `#` must be whole levels, \
                 `#` the last)"
            ));
        }
    }
    Ok(Rule { kind, levels })
}

/// Whether a pattern's `%u`/`%c` levels can stand for this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Usable,
    /// It needs a user name and the client has none.
    Missing,
    /// A name it needs is empty or holds `+`, `#` or `/`.
    Unusable,
}

fn names(levels: &[String], who: Who<'_>) -> Names {
    let plain = |name: &str| !name.is_empty() && !name.contains(['+', '#', '/']);
    let mut found = Names::Usable;
    for level in levels {
        match level.as_str() {
            "%c" if !plain(who.client_id) => return Names::Unusable,
            "%u" => match who.username {
                None => found = Names::Missing,
                Some(user) if !plain(user) => return Names::Unusable,
                Some(_) => {}
            },
            _ => {}
        }
    }
    found
}

/// A pattern's levels with `%u` and `%c` replaced (`names` said usable).
fn substitute<'a>(levels: &'a [String], who: Who<'a>) -> Vec<&'a str> {
    levels
        .iter()
        .map(|level| match level.as_str() {
            "%u" => who.username.unwrap_or_default(),
            "%c" => who.client_id,
            other => other,
        })
        .collect()
}

/// Whether the filter `levels` matches the topic name `topic`
/// (MQTT-4.7.2-1: wildcards at the first level skip `$` topics).
fn matches_topic<L: AsRef<str>>(levels: &[L], topic: &str) -> bool {
    matches_with(levels, topic, |rule, level| rule == level)
}

/// Whether a pattern's levels, with `%u`/`%c` standing for the client's
/// names (`names` said usable), match `topic`.
fn matches_pattern(levels: &[String], topic: &str, who: Who<'_>) -> bool {
    matches_with(levels, topic, |rule, level| match rule {
        "%u" => who.username == Some(level),
        "%c" => who.client_id == level,
        _ => rule == level,
    })
}

/// Level-by-level matching (MQTT-4.7.2-1: wildcards at the first level
/// skip `$` topics), literal levels compared by `same`.
fn matches_with<L: AsRef<str>>(
    levels: &[L],
    topic: &str,
    same: impl Fn(&str, &str) -> bool,
) -> bool {
    let dollar = topic.starts_with('$');
    let mut names = topic.split('/');
    for (i, level) in levels.iter().enumerate() {
        let rule = level.as_ref();
        if rule == "#" {
            return !(i == 0 && dollar);
        }
        let Some(name) = names.next() else {
            return false;
        };
        match rule {
            "+" if i == 0 && dollar => return false,
            "+" => {}
            _ if same(rule, name) => {}
            _ => return false,
        }
    }
    names.next().is_none()
}

/// Whether the rule filter `levels` covers every topic the subscription
/// filter `filter` can match.
fn covers<L: AsRef<str>>(levels: &[L], filter: &[&str]) -> bool {
    let dollar = filter.first().is_some_and(|t| t.starts_with('$'));
    for (i, level) in levels.iter().enumerate() {
        let level = level.as_ref();
        let Some(f) = filter.get(i) else {
            // `a/#` covers `a` (# matches the parent level too).
            return level == "#" && i == levels.len() - 1;
        };
        match level {
            "#" => return !(i == 0 && dollar),
            "+" if i == 0 && dollar => return false,
            "+" if *f != "#" => {}
            l if l == *f => {}
            _ => return false,
        }
    }
    levels.len() == filter.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic write shared/in
topic $SYS/broker/clients/#

user bob smith
topic read shared/#

pattern write devices/%c/state
pattern read users/%u/inbox
pattern readwrite d/%c/%u/x
";

    fn who<'a>(username: Option<&'a str>, client_id: &'a str) -> Who<'a> {
        Who {
            username,
            client_id,
        }
    }

    #[test]
    fn sections_grant_what_they_name() {
        let acl = AclFile::parse(FILE).unwrap();
        let anon = who(None, "c1");
        let alice = who(Some("alice"), "c2");
        let bob = who(Some("bob smith"), "c3");
        assert!(acl.allows(anon, "public/news", Access::Read));
        assert!(!acl.allows(anon, "public/news", Access::Write));
        assert!(!acl.allows(anon, "alice/x", Access::Read));
        assert!(acl.allows(alice, "alice/x", Access::Write));
        assert!(acl.allows(alice, "alice", Access::Read), "a/# covers a");
        assert!(
            !acl.allows(alice, "public/news", Access::Read),
            "anonymous rules are not alice's"
        );
        assert!(acl.allows(alice, "shared/in", Access::Write));
        assert!(!acl.allows(alice, "shared/in", Access::Read));
        assert!(
            acl.allows(bob, "shared/in", Access::Read),
            "user names may hold spaces"
        );
        assert!(!acl.allows(who(Some("carol"), "c4"), "shared/in", Access::Read));
    }

    #[test]
    fn deny_wins_over_a_grant() {
        let acl = AclFile::parse(FILE).unwrap();
        let alice = who(Some("alice"), "c2");
        assert!(!acl.allows(alice, "alice/secret", Access::Read));
        assert!(!acl.allows(alice, "alice/secret", Access::Write));
        assert!(acl.allows(alice, "alice/secret/not", Access::Read));
        // The subscription is granted; the denied topic is filtered at delivery.
        assert!(acl.allows_subscribe(alice, "alice/#"));
        assert!(!acl.allows_subscribe(alice, "alice/secret"));
    }

    #[test]
    fn patterns_substitute_client_id_and_user_name() {
        let acl = AclFile::parse(FILE).unwrap();
        let alice = who(Some("alice"), "dev1");
        assert!(acl.allows(alice, "devices/dev1/state", Access::Write));
        assert!(!acl.allows(alice, "devices/dev2/state", Access::Write));
        assert!(acl.allows(alice, "users/alice/inbox", Access::Read));
        assert!(!acl.allows(alice, "users/bob/inbox", Access::Read));
        assert!(acl.allows(alice, "d/dev1/alice/x", Access::Write));
        // Anonymous clients match %c patterns but no %u pattern.
        let anon = who(None, "dev3");
        assert!(acl.allows(anon, "devices/dev3/state", Access::Write));
        assert!(!acl.allows(anon, "users//inbox", Access::Read));
        // A name with a wildcard or a separator matches no pattern.
        assert!(!acl.allows(who(None, "+"), "devices/x/state", Access::Write));
        assert!(!acl.allows(who(None, "a/b"), "devices/a/b/state", Access::Write));
        assert!(!acl.allows(who(Some("#"), "c"), "users/x/inbox", Access::Read));
        // A user name holding `%c` is a name, not a placeholder.
        let odd = who(Some("%c"), "dev9");
        assert!(acl.allows(odd, "d/dev9/%c/x", Access::Read));
        assert!(!acl.allows(odd, "d/dev9/dev9/x", Access::Read));
    }

    #[test]
    fn a_deny_pattern_a_client_cannot_fill_denies_it_everything() {
        let text = "topic read clients/#\npattern deny clients/%c/secret\n";
        let acl = AclFile::parse(text).unwrap();
        assert!(acl.allows(who(None, "a"), "clients/b/secret", Access::Read));
        assert!(!acl.allows(who(None, "a"), "clients/a/secret", Access::Read));
        // `a/b` or `+` cannot be substituted: fail closed, not open.
        for id in ["a/b", "+", "#"] {
            let anon = who(None, id);
            assert!(
                !acl.allows(anon, "clients/a/b/secret", Access::Read),
                "{id}"
            );
            assert!(!acl.allows(anon, "clients/x", Access::Read), "{id}");
        }
        // No user name: a %u deny pattern is not about this client.
        let acl = AclFile::parse("topic read x/#\npattern deny x/%u\n").unwrap();
        assert!(acl.allows(who(None, "c"), "x/y", Access::Read));
        let acl = AclFile::parse("user y\ntopic read x/#\npattern deny x/%u\n").unwrap();
        assert!(!acl.allows(who(Some("y"), "c"), "x/y", Access::Read));
        assert!(acl.allows(who(Some("y"), "c"), "x/z", Access::Read));
    }

    #[test]
    fn patterns_match_in_place_as_they_would_substituted() {
        // The delivery path matches patterns without building strings;
        // it must agree with substituting and matching.
        let patterns = [
            "a/%c",
            "%u/+/x",
            "d/%c/%u/#",
            "p%%/%u/%c",
            "#",
            "+/%u",
            "%c",
        ];
        let topics = [
            "a/dev",
            "a/dev/x",
            "u/1/x",
            "d/dev/u/x/y",
            "d/dev/u",
            "p%%/u/dev",
            "$x/u",
            "dev",
            "a/+",
        ];
        let clients = [(Some("u"), "dev"), (Some("dev"), "u"), (Some("x"), "y")];
        for pattern in patterns {
            let levels: Vec<String> = pattern.split('/').map(str::to_owned).collect();
            for topic in topics {
                for (username, client_id) in clients {
                    let who = Who {
                        username,
                        client_id,
                    };
                    assert_eq!(names(&levels, who), Names::Usable);
                    let substituted = matches_topic(&substitute(&levels, who), topic);
                    assert_eq!(
                        matches_pattern(&levels, topic, who),
                        substituted,
                        "{pattern} {topic} {username:?} {client_id}"
                    );
                }
            }
        }
    }

    #[test]
    fn sys_needs_a_rule_that_names_it() {
        // MQTT-4.7.2-1: `#` and `+` at the first level skip `$` topics.
        let acl = AclFile::parse("user root\ntopic #\ntopic +/x\n").unwrap();
        let root = who(Some("root"), "c");
        assert!(acl.allows(root, "a/b", Access::Read));
        assert!(!acl.allows(root, "$SYS/broker/uptime", Access::Read));
        assert!(!acl.allows(root, "$SYS/x", Access::Read));
        assert!(!acl.allows_subscribe(root, "$SYS/#"));
        let alice = who(Some("alice"), "c");
        let acl = AclFile::parse(FILE).unwrap();
        assert!(acl.allows(alice, "$SYS/broker/clients/connected", Access::Read));
        assert!(!acl.allows(alice, "$SYS/broker/uptime", Access::Read));
    }

    #[test]
    fn subscriptions_must_be_covered_whole() {
        let acl = AclFile::parse("topic read a/#\ntopic read b/+\ntopic read c/d\n").unwrap();
        let anon = who(None, "c");
        for (filter, allowed) in [
            ("a/#", true),
            ("a/+/b", true),
            ("a", true),
            ("#", false),
            ("b/x", true),
            ("b/+", true),
            ("b/#", false),
            ("b/x/y", false),
            ("c/d", true),
            ("c/+", false),
            ("c/d/e", false),
        ] {
            assert_eq!(acl.allows_subscribe(anon, filter), allowed, "{filter}");
        }
    }

    #[test]
    fn an_empty_file_denies_everything() {
        // Catalogue AU2 (CVE-2018-12550).
        let acl = AclFile::parse("# nothing\n\n").unwrap();
        for who in [who(None, "c"), who(Some("u"), "c")] {
            assert!(!acl.allows(who, "a", Access::Read));
            assert!(!acl.allows(who, "a", Access::Write));
            assert!(!acl.allows_subscribe(who, "#"));
        }
    }

    #[test]
    fn bad_lines_are_errors_with_their_number() {
        let cases = [
            ("topic read a/#\nuser\n", 2, "needs a user name"),
            ("\n\ntopic read\n", 3, "needs a topic filter"),
            ("topic a/#/b\n", 1, "not a valid topic filter"),
            ("topic read a+/b\n", 1, "not a valid topic filter"),
            ("  topic a\nallow all\n", 2, "unknown directive `allow`"),
            ("topic a # trailing comment\n", 1, "unknown access `a`"),
            // A typo in the access word is an error, not a topic.
            ("user x\ntopic Deny secret/#\n", 2, "unknown access `Deny`"),
            (
                "pattern read d/%c-%u\n",
                1,
                "must each be a whole topic level",
            ),
            (
                "pattern read d/x%c\n",
                1,
                "must each be a whole topic level",
            ),
        ];
        for (text, line, message) in cases {
            let e = AclFile::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(message), "{text:?}: {e}");
        }
        // Indented comments and blank lines are fine.
        AclFile::parse("   # comment\n\n\ttopic a\n").unwrap();
    }
}
