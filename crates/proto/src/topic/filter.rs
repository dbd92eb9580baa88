//! `TopicFilter`: what a subscription asks for, and how it matches.

use crate::string::MqttStr;

use super::{TopicError, TopicName};

/// A topic filter: a valid MQTT string of at least one character in which
/// `+` occupies a whole level and `#` is the whole last level
/// (MQTT-4.7.3-1, MQTT-4.7.1-1, MQTT-4.7.1-2 in 5.0 numbering).
///
/// This is the filter syntax only. A SUBSCRIBE or UNSUBSCRIBE entry should
/// go through [`Subscription::parse`](super::Subscription::parse), which
/// also recognises `$share/…`; `$share/g/t` is a valid plain filter too, but
/// one that only matches a topic literally named `$share/g/t`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicFilter(MqttStr);

impl TopicFilter {
    /// Checks that `filter` is a topic filter a subscription may use.
    pub fn new(filter: MqttStr) -> Result<Self, TopicError> {
        check(filter.as_bytes())?;
        Ok(TopicFilter(filter))
    }

    /// Whether the filter holds `+` or `#`, i.e. may match more than the one
    /// topic name spelled like it.
    pub fn has_wildcards(&self) -> bool {
        self.0.as_bytes().iter().any(|&b| b == b'+' || b == b'#')
    }

    /// Whether a message published to `topic` is selected by this filter
    /// (§4.7). One pass over the bytes of both, no allocation.
    ///
    /// `+` matches exactly one level, which may be empty; `#` matches the
    /// parent level and any number of children; other levels must be equal
    /// byte for byte (MQTT-4.7.3-4). A filter that starts with a wildcard does
    /// not match a topic name that starts with `$` (MQTT-4.7.2-1).
    pub fn matches(&self, topic: &TopicName) -> bool {
        let filter = self.0.as_bytes();
        if topic.is_system() && matches!(filter.first(), Some(b'+' | b'#')) {
            return false;
        }
        match_bytes(filter, topic.as_mqtt_str().as_bytes())
    }
}

topic_string!(TopicFilter);

fn check(filter: &[u8]) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    for (i, &b) in filter.iter().enumerate() {
        match b {
            b'+' if !(starts_level(filter, i) && ends_level(filter, i)) => {
                return Err(TopicError::MisplacedSingleLevelWildcard);
            }
            b'#' if !(starts_level(filter, i) && i + 1 == filter.len()) => {
                return Err(TopicError::MisplacedMultiLevelWildcard);
            }
            _ => {}
        }
    }
    Ok(())
}

fn starts_level(bytes: &[u8], i: usize) -> bool {
    i == 0 || bytes[i - 1] == b'/'
}

fn ends_level(bytes: &[u8], i: usize) -> bool {
    bytes.get(i + 1).is_none_or(|&b| b == b'/')
}

/// Walks filter and topic together. A topic name holds no `+` or `#`, so
/// their common prefix ends at the filter's next wildcard or at the first
/// difference; literal bytes, `/` included, are equal on both sides, so both
/// cross level boundaries together and a wildcard is met at a level start.
fn match_bytes(filter: &[u8], topic: &[u8]) -> bool {
    let (mut f, mut t) = (0, 0);
    loop {
        let same = common_prefix(&filter[f..], &topic[t..]);
        (f, t) = (f + same, t + same);
        match filter.get(f) {
            None => return t == topic.len(),
            Some(b'#') => return true,
            Some(b'+') => (f, t) = (f + 1, end_of_level(topic, t)),
            // The topic ran out exactly at a level end: `a/#` still matches
            // its parent `a`.
            Some(_) => return t == topic.len() && &filter[f..] == b"/#",
        }
    }
}

/// Length of the common prefix of `a` and `b`. Compares eight bytes at a
/// time: this is the inner loop of routing, and a byte-at-a-time loop
/// spends about a nanosecond per byte of topic.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut same = 0;
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        let diff = word(x) ^ word(y);
        if diff != 0 {
            // Little-endian: the lowest set bit is in the first differing byte.
            return same + diff.trailing_zeros() as usize / 8;
        }
        same += 8;
    }
    let tail = a[same..].iter().zip(&b[same..]);
    same + tail.take_while(|(x, y)| x == y).count()
}

fn word(chunk: &[u8]) -> u64 {
    // `chunks_exact(8)` only hands over eight bytes, so this cannot panic.
    let mut bytes = [0; 8];
    bytes.copy_from_slice(chunk);
    u64::from_le_bytes(bytes)
}

fn end_of_level(topic: &[u8], from: usize) -> usize {
    topic[from..]
        .iter()
        .position(|&b| b == b'/')
        .map_or(topic.len(), |n| from + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::string::StringError;
    use proptest::prelude::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).expect("valid filter")
    }

    fn topic(s: &str) -> TopicName {
        TopicName::try_from(s).expect("valid topic name")
    }

    fn matches(f: &str, t: &str) -> bool {
        filter(f).matches(&topic(t))
    }

    #[test]
    fn filter_must_be_at_least_one_character_long() {
        // MQTT-4.7.3-1; catalogue S2.
        assert_eq!(TopicFilter::try_from(""), Err(TopicError::Empty));
    }

    #[test]
    fn filter_must_not_include_the_null_character() {
        // MQTT-4.7.3-2; catalogue U3.
        let err = TopicError::InvalidString(StringError::NullCharacter);
        assert_eq!(TopicFilter::try_from("a/\0/#"), Err(err));
    }

    #[test]
    fn filter_must_not_encode_to_more_than_65535_bytes() {
        // MQTT-4.7.3-3.
        let err = TopicError::InvalidString(StringError::TooLong);
        assert_eq!(TopicFilter::try_from("+".repeat(65_536).as_str()), Err(err));
    }

    #[test]
    fn multi_level_wildcard_must_be_on_its_own_or_after_a_separator_and_last() {
        // MQTT-4.7.1-1 (5.0) = MQTT-4.7.1-2 (3.1.1); §4.7.1.2; catalogue S3.
        for bad in [
            "sport/tennis#",
            "sport/tennis/#/ranking",
            "a/#/b",
            "a#",
            "#/",
            "##",
            "#+",
        ] {
            let err = TopicFilter::try_from(bad);
            assert_eq!(err, Err(TopicError::MisplacedMultiLevelWildcard), "{bad}");
        }
        for good in ["#", "sport/tennis/#", "/#", "+/#", "//#"] {
            assert!(TopicFilter::try_from(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn single_level_wildcard_must_occupy_an_entire_level() {
        // MQTT-4.7.1-2 (5.0) = MQTT-4.7.1-3 (3.1.1); §4.7.1.3; catalogue S3.
        for bad in ["sport+", "a+/b", "++", "+a", "a/+b/c", "+#"] {
            let err = TopicFilter::try_from(bad);
            assert_eq!(err, Err(TopicError::MisplacedSingleLevelWildcard), "{bad}");
        }
        for good in ["+", "+/tennis/#", "sport/+/player1", "+/+", "/+/", "+//+"] {
            assert!(TopicFilter::try_from(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn multi_level_wildcard_matches_the_parent_and_any_number_of_child_levels() {
        // §4.7.1.2; catalogue T1.
        let f = "sport/tennis/player1/#";
        assert!(matches(f, "sport/tennis/player1"));
        assert!(matches(f, "sport/tennis/player1/ranking"));
        assert!(matches(f, "sport/tennis/player1/score/wimbledon"));
        assert!(matches("sport/tennis/#", "sport/tennis"));
        assert!(!matches(f, "sport/tennis/player10"));
        assert!(!matches(f, "sport/tennis"));
    }

    #[test]
    fn sport_hash_also_matches_the_singular_sport() {
        // §4.7.1.2: '#' includes the parent level.
        assert!(matches("sport/#", "sport"));
        assert!(matches("sport/#", "sport/"));
        assert!(!matches("sport/#", "sports"));
    }

    #[test]
    fn hash_alone_receives_every_message_not_beginning_with_dollar() {
        // §4.7.1.2, §4.7.2.
        for t in ["a", "/", "//", "sport/tennis", "a/$b", " "] {
            assert!(matches("#", t), "{t}");
        }
        assert!(!matches("#", "$SYS/uptime"));
    }

    #[test]
    fn single_level_wildcard_matches_only_one_topic_level() {
        // §4.7.1.3.
        assert!(matches("sport/tennis/+", "sport/tennis/player1"));
        assert!(matches("sport/tennis/+", "sport/tennis/player2"));
        assert!(!matches("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(matches("sport/+/player1", "sport/tennis/player1"));
        assert!(matches("+/tennis/#", "sport/tennis/player1/ranking"));
    }

    #[test]
    fn sport_plus_does_not_match_sport_but_does_match_sport_slash() {
        // §4.7.1.3; catalogue T2 (the empty level after '/').
        assert!(!matches("sport/+", "sport"));
        assert!(matches("sport/+", "sport/"));
    }

    #[test]
    fn slash_finance_matches_plus_plus_and_slash_plus_but_not_plus() {
        // §4.7.1.3; catalogue T4.
        assert!(matches("+/+", "/finance"));
        assert!(matches("/+", "/finance"));
        assert!(!matches("+", "/finance"));
    }

    #[test]
    fn filters_starting_with_a_wildcard_do_not_match_topic_names_beginning_with_dollar() {
        // MQTT-4.7.2-1; §4.7.2; catalogue S11.
        assert!(!matches("#", "$SYS/monitor/Clients"));
        assert!(!matches("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(!matches("+", "$"));
        assert!(!matches("+/#", "$foo/bar"));
        assert!(!matches("#", "$"));
    }

    #[test]
    fn dollar_sys_filters_receive_dollar_sys_topics() {
        // §4.7.2.
        assert!(matches("$SYS/#", "$SYS/monitor/Clients"));
        assert!(matches("$SYS/#", "$SYS"));
        assert!(matches("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(!matches("$SYS/#", "$SYSTEM/x"));
    }

    #[test]
    fn receiving_dollar_sys_and_ordinary_topics_takes_both_hash_and_dollar_sys_hash() {
        // §4.7.2.
        let both = [filter("#"), filter("$SYS/#")];
        for t in ["$SYS/broker/load", "sport/tennis"] {
            let t = topic(t);
            assert_eq!(both.iter().filter(|f| f.matches(&t)).count(), 1, "{t}");
        }
    }

    #[test]
    fn dollar_only_matters_as_the_first_character_of_the_topic_name() {
        // MQTT-4.7.2-1 speaks of names beginning with '$', no other level.
        assert!(matches("a/+", "a/$b"));
        assert!(matches("a/#", "a/$SYS/x"));
        assert!(matches("+/$", "a/$"));
    }

    #[test]
    fn matching_is_character_for_character_with_no_normalisation() {
        // MQTT-4.7.3-4; §4.7.3; catalogues T5, U8.
        assert!(!matches("ACCOUNTS", "Accounts"));
        assert!(!matches("Accounts payable", "Accounts payable "));
        assert!(matches("Accounts payable", "Accounts payable"));
        let (nfc, nfd) = ("caf\u{e9}", "cafe\u{301}");
        assert!(!matches(nfc, nfd));
        assert!(!matches(&format!("{nfc}/+"), &format!("{nfd}/x")));
        assert!(!matches("\u{FEFF}topic", "topic"));
    }

    #[test]
    fn leading_and_trailing_separators_are_significant_when_matching() {
        // §4.7.3: "/finance" is different from "finance"; catalogue T3.
        assert!(!matches("/finance", "finance"));
        assert!(!matches("finance", "/finance"));
        assert!(!matches("a", "a/"));
        assert!(!matches("+", "/"));
        assert!(matches("+/+", "/"));
        assert!(matches("+/+/+", "//"));
        assert!(!matches("+/+", "//"));
        assert!(matches("/", "/"));
    }

    #[test]
    fn has_wildcards_reports_plus_and_hash_only() {
        assert!(filter("a/+/b").has_wildcards());
        assert!(filter("#").has_wildcards());
        assert!(!filter("$share/g/a").has_wildcards());
    }

    #[test]
    fn filter_of_65000_separators_is_capped_by_the_level_limit_and_matched_without_recursion() {
        // Catalogue S8 (CVE-2019-11779), P6.
        let slashes = MqttStr::try_from("/".repeat(65_000)).expect("valid string");
        let err = TopicError::TooManyLevels { max: 200 };
        assert_eq!(TopicFilter::with_max_levels(slashes.clone(), 200), Err(err));
        let long = TopicFilter::new(slashes).expect("valid without a limit");
        assert!(long.matches(&topic(&"/".repeat(65_000))));
        assert!(!long.matches(&topic(&"/".repeat(65_001))));
        let pluses = TopicFilter::try_from(vec!["+"; 32_768].join("/")).expect("valid");
        assert!(pluses.matches(&topic(&"/".repeat(32_767))));
        assert!(filter("#").matches(&topic(&"/".repeat(65_535))));
    }

    #[test]
    fn filter_is_stored_as_a_string_and_checked_when_read_back() {
        let f = filter("sport/+/#");
        let json = serde_json::to_string(&f).expect("serializes");
        assert_eq!(json, r#""sport/+/#""#);
        assert_eq!(serde_json::from_str::<TopicFilter>(&json).ok(), Some(f));
        assert!(serde_json::from_str::<TopicFilter>(r#""a#""#).is_err());
    }

    #[test]
    fn common_prefix_finds_the_first_difference_at_every_offset() {
        let a: Vec<u8> = (0..40).collect();
        for len in 0..a.len() {
            assert_eq!(common_prefix(&a, &a[..len]), len);
            for at in 0..len {
                let mut b = a[..len].to_vec();
                b[at] ^= 0x80;
                assert_eq!(common_prefix(&a, &b), at, "len {len}, difference at {at}");
            }
        }
    }

    /// The matcher the specification describes, written the slow, obvious
    /// way: split both into levels, then compare level by level.
    fn reference_matches(filter: &str, name: &str) -> bool {
        let f: Vec<&str> = filter.split('/').collect();
        let t: Vec<&str> = name.split('/').collect();
        if name.starts_with('$') && (f[0] == "+" || f[0] == "#") {
            return false;
        }
        for (i, level) in f.iter().enumerate() {
            if *level == "#" {
                return true;
            }
            match t.get(i) {
                Some(tl) if *level == "+" || level == tl => {}
                _ => return false,
            }
        }
        f.len() == t.len()
    }

    fn reference_valid_filter(filter: &str) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let last = levels.len() - 1;
        !filter.is_empty()
            && levels
                .iter()
                .enumerate()
                .all(|(i, l)| !l.contains(['+', '#']) || *l == "+" || (*l == "#" && i == last))
    }

    /// Levels drawn from a tiny alphabet so that random pairs often match;
    /// the long level makes matches run across `common_prefix`'s 8-byte words.
    fn levels(alphabet: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
        prop::collection::vec(prop::sample::select(alphabet), 1..6)
    }

    fn name_strategy() -> impl Strategy<Value = String> {
        levels(&["", "a", "b", "$", "ab", "abcdefghi"])
            .prop_map(|l| l.join("/"))
            .prop_filter("at least one character", |s| !s.is_empty())
    }

    fn filter_strategy() -> impl Strategy<Value = String> {
        (
            levels(&["", "a", "b", "$", "ab", "abcdefghi", "+"]),
            any::<bool>(),
        )
            .prop_map(|(mut l, hash)| {
                if hash {
                    *l.last_mut().expect("at least one level") = "#";
                }
                l.join("/")
            })
            .prop_filter("at least one character", |s| !s.is_empty())
    }

    /// Any short string over the characters that matter to the parser.
    fn text_strategy() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(&['a', 'b', '$', '/', '+', '#'][..]);
        prop::collection::vec(chars, 0..10).prop_map(String::from_iter)
    }

    /// 100,000 cases by default; `PROPTEST_CASES` raises it (catalogue T7
    /// asks for at least a million in CI).
    fn many_cases() -> ProptestConfig {
        let env = std::env::var("PROPTEST_CASES").ok();
        ProptestConfig::with_cases(env.and_then(|n| n.parse().ok()).unwrap_or(100_000))
    }

    proptest! {
        #![proptest_config(many_cases())]

        #[test]
        fn matches_agrees_with_a_naive_level_by_level_matcher(
            f in filter_strategy(),
            t in name_strategy(),
        ) {
            // Catalogue T7; MQTT-4.7.1-*, MQTT-4.7.2-1.
            let got = filter(&f).matches(&topic(&t));
            prop_assert_eq!(got, reference_matches(&f, &t), "filter {:?} topic {:?}", f, t);
        }

        #[test]
        fn parsing_agrees_with_a_naive_level_by_level_checker(s in text_strategy()) {
            let valid = reference_valid_filter(&s);
            prop_assert_eq!(TopicFilter::try_from(s.as_str()).is_ok(), valid, "{:?}", s);
            let name_ok = !s.is_empty() && !s.contains(['+', '#']);
            prop_assert_eq!(TopicName::try_from(s.as_str()).is_ok(), name_ok, "{:?}", s);
        }
    }
}
