//! Shared subscriptions (`$share/{ShareName}/{filter}`, MQTT 5.0 §4.8.2) and
//! the `Subscription` a SUBSCRIBE entry parses into.

use std::fmt;

use bytes::Bytes;

use crate::string::MqttStr;

use super::{TopicError, TopicFilter, TopicName};

/// The first level that marks a shared subscription.
const SHARE: &[u8] = b"$share";

/// A shared subscription: a ShareName naming the group of sessions that take
/// turns receiving messages, and the filter those messages must match.
///
/// The ShareName is at least one character and holds no `/`, `+` or `#`
/// (MQTT-4.8.2-1, MQTT-4.8.2-2). Only the filter takes part in matching.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SharedFilter {
    group: MqttStr,
    filter: TopicFilter,
}

impl SharedFilter {
    /// A shared subscription to `filter` for the ShareName `group`, as a
    /// client builds one to subscribe with.
    pub fn new(group: MqttStr, filter: TopicFilter) -> Result<Self, TopicError> {
        check_share_name(group.as_bytes())?;
        Ok(SharedFilter { group, filter })
    }

    /// The ShareName.
    pub fn group(&self) -> &MqttStr {
        &self.group
    }

    /// The filter that messages are matched against.
    pub fn filter(&self) -> &TopicFilter {
        &self.filter
    }

    /// Splits into ShareName and filter.
    pub fn into_parts(self) -> (MqttStr, TopicFilter) {
        (self.group, self.filter)
    }

    /// Whether `topic` is selected; `$share` and the ShareName are not taken
    /// into account (§4.8.2), so `$share/g/#` still skips `$SYS/…`.
    pub fn matches(&self, topic: &TopicName) -> bool {
        self.filter.matches(topic)
    }

    /// Parses the whole `$share/…` string, whose first level is `$share`.
    fn parse(full: MqttStr) -> Result<Self, TopicError> {
        let bytes = full.into_bytes();
        let (group, filter) = split_shared(&bytes)?;
        let filter = TopicFilter::new(MqttStr::from_bytes(filter)?)?;
        Ok(SharedFilter {
            group: MqttStr::from_bytes(group)?,
            filter,
        })
    }
}

/// Writes the subscription back as it is sent: `$share/{group}/{filter}`.
impl fmt::Display for SharedFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "$share/{}/{}", self.group, self.filter)
    }
}

/// A topic filter as a SUBSCRIBE or UNSUBSCRIBE entry carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// An ordinary filter: every matching session gets its own copy.
    Plain(TopicFilter),
    /// `$share/{ShareName}/{filter}`: one session of the group gets each
    /// matching message.
    Shared(SharedFilter),
}

impl Subscription {
    /// Parses a filter, recognising a shared subscription by a first level of
    /// exactly `$share`.
    ///
    /// `$sharefoo/x` and `$SHARE/g/x` are plain filters. A bare `$share` is a
    /// shared subscription missing its ShareName, as mosquitto treats it,
    /// rather than a filter for a topic nobody can mean.
    pub fn parse(s: MqttStr) -> Result<Self, TopicError> {
        let bytes = s.as_bytes();
        let shared = bytes.starts_with(SHARE) && bytes.get(SHARE.len()).is_none_or(|&b| b == b'/');
        if shared {
            SharedFilter::parse(s).map(Subscription::Shared)
        } else {
            TopicFilter::new(s).map(Subscription::Plain)
        }
    }

    /// Like [`Subscription::parse`], but also rejects a filter (after any
    /// `$share/{ShareName}/`) of more than `max_levels` levels.
    pub fn parse_with_max_levels(s: MqttStr, max_levels: usize) -> Result<Self, TopicError> {
        let subscription = Self::parse(s)?;
        subscription.filter().check_levels(max_levels)?;
        Ok(subscription)
    }

    /// The filter that messages are matched against.
    pub fn filter(&self) -> &TopicFilter {
        match self {
            Subscription::Plain(filter) => filter,
            Subscription::Shared(shared) => shared.filter(),
        }
    }

    /// The ShareName, for a shared subscription.
    pub fn share_name(&self) -> Option<&MqttStr> {
        match self {
            Subscription::Plain(_) => None,
            Subscription::Shared(shared) => Some(shared.group()),
        }
    }

    /// Whether `topic` is selected by the filter (see [`TopicFilter::matches`]).
    pub fn matches(&self, topic: &TopicName) -> bool {
        self.filter().matches(topic)
    }
}

/// Writes the subscription back exactly as it was parsed.
impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subscription::Plain(filter) => fmt::Display::fmt(filter, f),
            Subscription::Shared(shared) => fmt::Display::fmt(shared, f),
        }
    }
}

from_text!(Subscription, parse);

/// Splits `$share/{ShareName}/{filter}` into ShareName and filter, slices of
/// the same buffer. The ShareName is checked first, so `$share/g#` reports
/// the `#` in the name rather than the missing filter.
fn split_shared(bytes: &Bytes) -> Result<(Bytes, Bytes), TopicError> {
    let start = SHARE.len() + 1;
    let rest = bytes.get(start..).unwrap_or_default();
    let slash = rest.iter().position(|&b| b == b'/');
    check_share_name(&rest[..slash.unwrap_or(rest.len())])?;
    let group_end = start + slash.ok_or(TopicError::MissingSharedFilter)?;
    if group_end + 1 == bytes.len() {
        return Err(TopicError::MissingSharedFilter);
    }
    Ok((bytes.slice(start..group_end), bytes.slice(group_end + 1..)))
}

fn check_share_name(name: &[u8]) -> Result<(), TopicError> {
    if name.is_empty() || name.iter().any(|&b| matches!(b, b'/' | b'+' | b'#')) {
        return Err(TopicError::InvalidShareName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Subscription, TopicError> {
        Subscription::try_from(s)
    }

    fn shared(s: &str) -> SharedFilter {
        match parse(s) {
            Ok(Subscription::Shared(shared)) => shared,
            other => panic!("{s} is not a shared subscription: {other:?}"),
        }
    }

    fn topic(s: &str) -> TopicName {
        TopicName::try_from(s).expect("valid topic name")
    }

    #[test]
    fn shared_subscription_is_dollar_share_then_share_name_then_filter() {
        // §4.8.2.
        let s = shared("$share/consumer1/sport/tennis/+");
        assert_eq!(s.group(), &"consumer1");
        assert_eq!(s.filter().as_str(), "sport/tennis/+");
    }

    #[test]
    fn share_name_must_be_at_least_one_character_long() {
        // MQTT-4.8.2-1; catalogue S6.
        for bad in ["$share//t", "$share/", "$share"] {
            assert_eq!(parse(bad), Err(TopicError::InvalidShareName), "{bad}");
        }
    }

    #[test]
    fn share_name_must_not_contain_plus_or_hash() {
        // MQTT-4.8.2-2; catalogue S6.
        for bad in [
            "$share/g+/t",
            "$share/g#/t",
            "$share/g#",
            "$share/+/t",
            "$share/#",
        ] {
            assert_eq!(parse(bad), Err(TopicError::InvalidShareName), "{bad}");
        }
    }

    #[test]
    fn share_name_must_be_followed_by_a_slash_and_a_topic_filter() {
        // MQTT-4.8.2-2; catalogue S6.
        for bad in ["$share/g", "$share/g/"] {
            assert_eq!(parse(bad), Err(TopicError::MissingSharedFilter), "{bad}");
        }
    }

    #[test]
    fn filter_of_a_shared_subscription_follows_the_topic_filter_rules() {
        // MQTT-4.8.2-2 ("as described in section 4.7"); MQTT-4.7.1-1 and -2 (5.0).
        let multi = TopicError::MisplacedMultiLevelWildcard;
        assert_eq!(parse("$share/g/a#"), Err(multi));
        assert_eq!(parse("$share/g/a/#/b"), Err(multi));
        let single = TopicError::MisplacedSingleLevelWildcard;
        assert_eq!(parse("$share/g/a+"), Err(single));
        assert_eq!(shared("$share/g/#").filter().as_str(), "#");
        assert_eq!(shared("$share/g//").filter().as_str(), "/");
    }

    #[test]
    fn share_name_may_hold_any_other_character() {
        // §4.8.2: "a character string that does not include '/', '+' or '#'".
        assert_eq!(shared("$share/$g roup.é/t").group(), &"$g roup.é");
        assert_eq!(shared("$share/$share/t").group(), &"$share");
    }

    #[test]
    fn only_a_first_level_of_exactly_dollar_share_marks_a_shared_subscription() {
        // MQTT-4.8.2-1: the filter "MUST start with $share/".
        for plain in [
            "$sharefoo/x",
            "$SHARE/g/t",
            "x/$share/g/t",
            "$shar/g/t",
            "share/g/t",
        ] {
            let sub = parse(plain).expect("a plain filter");
            assert_eq!(
                sub,
                Subscription::Plain(TopicFilter::try_from(plain).expect("valid"))
            );
            assert_eq!(sub.share_name(), None);
        }
    }

    #[test]
    fn shared_subscriptions_with_different_share_names_are_distinct_but_match_alike() {
        // §4.8.2 example: consumer1 and consumer2 on sport/tennis/+.
        let one = parse("$share/consumer1/sport/tennis/+").expect("valid");
        let two = parse("$share/consumer2/sport/tennis/+").expect("valid");
        let plain = parse("sport/tennis/+").expect("valid");
        assert_ne!(one, two);
        for t in ["sport/tennis/player1", "sport/tennis/x/y", "sport/golf/x"] {
            let t = topic(t);
            assert_eq!(one.matches(&t), plain.matches(&t), "{t}");
            assert_eq!(two.matches(&t), plain.matches(&t), "{t}");
        }
    }

    #[test]
    fn shared_subscription_to_slash_finance_matches_the_same_topics_as_slash_finance() {
        // §4.8.2 example: "$share/consumer1//finance".
        let s = shared("$share/consumer1//finance");
        assert_eq!(s.filter().as_str(), "/finance");
        assert!(s.matches(&topic("/finance")));
        assert!(!s.matches(&topic("finance")));
    }

    #[test]
    fn share_and_share_name_are_not_taken_into_account_when_matching() {
        // §4.8.2; MQTT-4.7.2-1 applies to the filter after the ShareName.
        let s = parse("$share/g/#").expect("valid");
        assert!(s.matches(&topic("a/b")));
        assert!(!s.matches(&topic("$share/g/x")));
        assert!(!s.matches(&topic("$SYS/x")));
    }

    #[test]
    fn level_limit_counts_the_filter_after_the_share_name() {
        let at_limit = MqttStr::try_from("$share/g/a/b").expect("valid string");
        assert!(Subscription::parse_with_max_levels(at_limit, 2).is_ok());
        let over = MqttStr::try_from("$share/g/a/b/c").expect("valid string");
        let err = TopicError::TooManyLevels { max: 2 };
        assert_eq!(Subscription::parse_with_max_levels(over, 2), Err(err));
        let slashes = MqttStr::try_from("/".repeat(65_000)).expect("valid string");
        let err = TopicError::TooManyLevels { max: 200 };
        assert_eq!(Subscription::parse_with_max_levels(slashes, 200), Err(err));
    }

    #[test]
    fn shared_filter_built_by_a_client_checks_its_share_name() {
        // MQTT-4.8.2-1, MQTT-4.8.2-2.
        let filter = TopicFilter::try_from("a/+").expect("valid");
        let group = |s: &str| MqttStr::try_from(s).expect("valid string");
        let err = Err(TopicError::InvalidShareName);
        assert_eq!(SharedFilter::new(group(""), filter.clone()), err);
        assert_eq!(SharedFilter::new(group("a/b"), filter.clone()), err);
        let s = SharedFilter::new(group("g"), filter.clone()).expect("valid");
        assert_eq!(s.to_string(), "$share/g/a/+");
        assert_eq!(s.into_parts(), (group("g"), filter));
    }

    #[test]
    fn subscription_is_written_and_stored_as_it_was_sent() {
        for text in ["$share/g/sport/+", "$share/g//", "sport/#", "$sharefoo/x"] {
            let sub = parse(text).expect("valid");
            assert_eq!(sub.to_string(), text);
            let json = serde_json::to_string(&sub).expect("serializes");
            assert_eq!(serde_json::from_str::<Subscription>(&json).ok(), Some(sub));
        }
        assert!(serde_json::from_str::<Subscription>(r#""$share/g""#).is_err());
    }
}
