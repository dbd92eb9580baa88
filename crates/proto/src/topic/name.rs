//! `TopicName`: the topic a PUBLISH is sent to.

use crate::string::MqttStr;

use super::TopicError;

/// A topic name: at least one character, no `+` or `#`, a valid MQTT
/// string (MQTT-4.7.3-1, MQTT-3.3.2-2, MQTT-4.7.3-2, MQTT-4.7.3-3).
///
/// Every level is literal text: `/a`, `a/`, `/` and `//` are distinct topics,
/// and case, spaces and Unicode forms are kept as sent.
///
/// One value breaks the first rule: the codec builds the empty topic name
/// for an MQTT 5.0 PUBLISH that carries only a Topic Alias, and replaces it
/// with the aliased topic before anything routes on it. [`TopicName::is_empty`]
/// tells that value apart; no public constructor produces it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicName(MqttStr);

impl TopicName {
    /// Checks that `name` is a topic name a PUBLISH may carry.
    pub fn new(name: MqttStr) -> Result<Self, TopicError> {
        check(name.as_bytes())?;
        Ok(TopicName(name))
    }

    /// The empty topic name of an alias-only MQTT 5.0 PUBLISH, where the
    /// Topic Alias stands in for the name (§3.3.2.3.4). Crate-only so that no
    /// application can publish to it.
    pub(crate) fn empty() -> Self {
        TopicName(MqttStr::new())
    }

    /// Whether this is the empty name of an alias-only PUBLISH, which the
    /// codec has yet to resolve. Always false for a name from [`TopicName::new`].
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

topic_string!(TopicName);

fn check(name: &[u8]) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    let wildcard = crate::string::contains_any(name, b"+#");
    if wildcard {
        return Err(TopicError::WildcardInTopicName);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::string::StringError;

    fn name(s: &str) -> Result<TopicName, TopicError> {
        TopicName::try_from(s)
    }

    #[test]
    fn topic_name_must_be_at_least_one_character_long() {
        // MQTT-4.7.3-1; catalogue P3.
        assert_eq!(name(""), Err(TopicError::Empty));
        assert!(name("a").is_ok());
    }

    #[test]
    fn topic_name_must_not_contain_wildcard_characters() {
        // MQTT-3.3.2-2; MQTT-4.7.0-1 (5.0) = MQTT-4.7.1-1 (3.1.1); catalogue P4.
        for bad in ["a/+/b", "#", "a/#", "+", "sport+", "a#b", "$SYS/#"] {
            assert_eq!(name(bad), Err(TopicError::WildcardInTopicName), "{bad}");
        }
    }

    #[test]
    fn topic_name_must_not_include_the_null_character() {
        // MQTT-4.7.3-2; catalogue U3.
        let err = TopicError::InvalidString(StringError::NullCharacter);
        assert_eq!(name("a\0b"), Err(err));
    }

    #[test]
    fn topic_name_must_not_encode_to_more_than_65535_bytes() {
        // MQTT-4.7.3-3.
        let err = TopicError::InvalidString(StringError::TooLong);
        assert_eq!(name(&"a".repeat(65_536)), Err(err));
        assert!(name(&"a".repeat(65_535)).is_ok());
    }

    #[test]
    fn leading_trailing_and_lone_separators_make_distinct_valid_topic_names() {
        // §4.7.3: a leading or trailing '/' creates a distinct Topic Name;
        // '/' alone is valid. Catalogue T3.
        let names = ["/", "//", "/a", "a/", "a"].map(|s| name(s).expect("valid name"));
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn topic_names_are_case_sensitive_and_may_contain_spaces() {
        // §4.7.3: "ACCOUNTS" and "Accounts" differ, "Accounts payable" is
        // valid; nothing is trimmed. Catalogue T5.
        assert_ne!(name("ACCOUNTS"), name("Accounts"));
        let spaced = name(" Accounts payable ").expect("spaces are allowed");
        assert_eq!(spaced.as_str(), " Accounts payable ");
    }

    #[test]
    fn names_that_are_special_elsewhere_are_ordinary_topics() {
        // Catalogue T8 (Aedes GHSA-52qw-whmv-87c5 analogue).
        for s in [
            "__proto__",
            "constructor",
            ".",
            "..",
            "%00",
            "../etc",
            "a/./b",
        ] {
            let topic = name(s).expect("ordinary topic");
            assert_eq!(topic.as_str(), s);
            assert!(!topic.is_system());
        }
    }

    #[test]
    fn topic_name_beginning_with_dollar_is_a_system_topic() {
        // §4.7.2.
        assert!(name("$SYS/broker/uptime").expect("valid").is_system());
        assert!(name("$").expect("valid").is_system());
        assert!(!name("a/$SYS").expect("valid").is_system());
    }

    #[test]
    fn levels_include_the_empty_levels_around_separators() {
        // §4.7.1.1: adjacent separators indicate a zero-length level.
        let topic = name("a//b/").expect("valid");
        assert_eq!(topic.levels().collect::<Vec<_>>(), ["a", "", "b", ""]);
        assert_eq!(topic.level_count(), 4);
        assert_eq!(name("/").expect("valid").level_count(), 2);
    }

    #[test]
    fn level_limit_allows_exactly_max_levels() {
        let at_limit = MqttStr::try_from("a/".repeat(199) + "a").expect("valid");
        let over = MqttStr::try_from("a/".repeat(200) + "a").expect("valid");
        assert!(TopicName::with_max_levels(at_limit, 200).is_ok());
        let err = TopicName::with_max_levels(over, 200);
        assert_eq!(err, Err(TopicError::TooManyLevels { max: 200 }));
    }

    #[test]
    fn topic_of_65535_separators_is_rejected_by_the_level_limit_without_recursion() {
        // Catalogue P6: 65,536 empty levels; capped, not recursed over.
        let slashes = MqttStr::try_from("/".repeat(65_535)).expect("valid string");
        let topic = TopicName::new(slashes.clone()).expect("valid without a limit");
        assert_eq!(topic.level_count(), 65_536);
        assert_eq!(topic.levels().count(), 65_536);
        let err = TopicError::TooManyLevels { max: 200 };
        assert_eq!(topic.check_levels(200), Err(err));
        assert_eq!(TopicName::with_max_levels(slashes, 200), Err(err));
    }

    #[test]
    fn empty_topic_name_exists_only_for_an_alias_only_publish() {
        // §3.3.2.3.4: the codec's exception to MQTT-4.7.3-1.
        assert!(TopicName::empty().is_empty());
        assert_eq!(TopicName::empty().as_str(), "");
        assert!(!name("a").expect("valid").is_empty());
    }

    #[test]
    fn topic_name_is_stored_as_a_string_and_checked_when_read_back() {
        let topic = name("sport/tennis").expect("valid");
        let json = serde_json::to_string(&topic).expect("serializes");
        assert_eq!(json, r#""sport/tennis""#);
        let back: TopicName = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, topic);
        assert!(serde_json::from_str::<TopicName>(r#""a/+""#).is_err());
        assert!(serde_json::from_str::<TopicName>(r#""""#).is_err());
    }

    #[test]
    fn topic_name_displays_and_converts_as_its_text() {
        let topic: TopicName = "a/b".parse().expect("valid");
        assert_eq!(topic.to_string(), "a/b");
        assert_eq!(format!("{topic:?}"), r#"TopicName("a/b")"#);
        assert_eq!(topic.as_mqtt_str(), &"a/b");
        assert_eq!(topic.clone().into_inner(), "a/b");
        assert_eq!(TopicName::try_from(String::from("a/b")), Ok(topic));
    }
}
