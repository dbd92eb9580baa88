//! The subscription trie: which sessions want a topic.
//!
//! Filters are stored level by level; a lookup walks the topic's levels once,
//! following the exact child, the `+` child and collecting `#` subscribers
//! on the way. Wildcards at the first level never match a topic starting
//! with `$` (MQTT-4.7.2-1). A session with several matching subscriptions
//! gets one delivery at the highest QoS, carrying every matching
//! subscription identifier (MQTT-3.3.4-2, -3, -5 in 5.0). The broker holds
//! the router under a read-write lock: many publishers look up at once.

use std::collections::HashMap;

use pigeon_proto::codec::SubscriptionOptions;
use pigeon_proto::topic::{TopicFilter, TopicName};
use pigeon_proto::QoS;

/// Identifies a session inside the broker (never reused while it lives).
pub type SessionId = u64;

/// One subscription of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    /// Its options (QoS, No Local, Retain As Published, Retain Handling).
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier (v5).
    pub identifier: Option<u32>,
}

/// A session's share of one routed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The session.
    pub session: SessionId,
    /// The highest QoS among its matching subscriptions.
    pub qos: QoS,
    /// Whether any matching subscription asked for Retain As Published.
    pub retain_as_published: bool,
    /// Whether every matching subscription asked for No Local.
    pub no_local: bool,
    /// Identifiers of all matching subscriptions.
    pub identifiers: Vec<u32>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Subscribers whose filter ends here with `#`.
    hash: HashMap<SessionId, Subscription>,
    /// Subscribers whose filter ends exactly here.
    exact: HashMap<SessionId, Subscription>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.exact.is_empty()
    }
}

/// All subscriptions of all sessions.
#[derive(Debug, Default)]
pub struct Router {
    root: Node,
    count: usize,
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds or replaces `session`'s subscription to `filter`; returns
    /// whether one existed (a replacement, MQTT-3.8.4-3).
    pub fn subscribe(
        &mut self,
        filter: &TopicFilter,
        session: SessionId,
        sub: Subscription,
    ) -> bool {
        let Some(node) = self.node_mut(filter, true) else {
            return false;
        };
        let slot = if ends_with_hash(filter) {
            &mut node.hash
        } else {
            &mut node.exact
        };
        let existed = slot.insert(session, sub).is_some();
        self.count += usize::from(!existed);
        existed
    }

    /// The node the filter's levels lead to (before a trailing `#`).
    fn node_mut(&mut self, filter: &TopicFilter, create: bool) -> Option<&mut Node> {
        let mut node = &mut self.root;
        let levels = filter_levels(filter);
        for level in levels {
            node = match (level, create) {
                ("+", true) => node.plus.get_or_insert_with(Box::default),
                ("+", false) => node.plus.as_deref_mut()?,
                (l, true) => node.children.entry(l.into()).or_default(),
                (l, false) => node.children.get_mut(l)?,
            };
        }
        Some(node)
    }

    /// Removes `session`'s subscription to `filter`; returns whether it
    /// existed (v5 UNSUBACK 0x11 otherwise, MQTT-3.10.4-5 in 5.0).
    pub fn unsubscribe(&mut self, filter: &TopicFilter, session: SessionId) -> bool {
        let Some(node) = self.node_mut(filter, false) else {
            return false;
        };
        let removed = match ends_with_hash(filter) {
            true => node.hash.remove(&session).is_some(),
            false => node.exact.remove(&session).is_some(),
        };
        if removed {
            self.count -= 1;
            prune(
                &mut self.root,
                filter_levels(filter).collect::<Vec<_>>().as_slice(),
            );
        }
        removed
    }

    /// Every session with a subscription matching `topic`, each once.
    pub fn route(&self, topic: &TopicName) -> Vec<Target> {
        let mut found: Vec<Target> = Vec::new();
        let system = topic.as_str().starts_with('$');
        let mut frontier: Vec<&Node> = vec![&self.root];
        let mut next: Vec<&Node> = Vec::new();
        for (depth, level) in topic.as_str().split('/').enumerate() {
            let wildcards = !(system && depth == 0);
            for node in frontier.drain(..) {
                if wildcards {
                    collect(&node.hash, &mut found);
                }
                if let Some(child) = node.children.get(level) {
                    next.push(child);
                }
                if let (true, Some(plus)) = (wildcards, node.plus.as_deref()) {
                    next.push(plus);
                }
            }
            std::mem::swap(&mut frontier, &mut next);
        }
        for node in frontier {
            // `sport/#` also matches `sport` itself (§4.7.1.2).
            collect(&node.hash, &mut found);
            collect(&node.exact, &mut found);
        }
        found
    }
}

fn ends_with_hash(filter: &TopicFilter) -> bool {
    filter.as_str() == "#" || filter.as_str().ends_with("/#")
}

/// The levels of `filter` that lead to its node: all but a trailing `#`.
fn filter_levels(filter: &TopicFilter) -> impl Iterator<Item = &str> {
    let s = filter.as_str();
    let s = match s {
        "#" => "",
        _ => s.strip_suffix("/#").unwrap_or(s),
    };
    let empty = filter.as_str() == "#";
    s.split('/').filter(move |_| !empty)
}

/// Removes empty nodes along `levels` so unsubscribed filters leave nothing
/// behind (catalogue S10).
fn prune(node: &mut Node, levels: &[&str]) {
    let Some((first, rest)) = levels.split_first() else {
        return;
    };
    let child = match *first {
        "+" => node.plus.as_deref_mut(),
        l => node.children.get_mut(l),
    };
    let Some(child) = child else { return };
    prune(child, rest);
    if child.is_empty() {
        match *first {
            "+" => node.plus = None,
            l => {
                node.children.remove(l);
            }
        }
    }
}

fn collect(subs: &HashMap<SessionId, Subscription>, found: &mut Vec<Target>) {
    for (&session, sub) in subs {
        let ids = sub.identifier.into_iter();
        match found.iter_mut().find(|t| t.session == session) {
            Some(t) => {
                t.qos = t.qos.max(sub.options.qos);
                t.retain_as_published |= sub.options.retain_as_published;
                t.no_local &= sub.options.no_local;
                t.identifiers.extend(ids);
            }
            None => found.push(Target {
                session,
                qos: sub.options.qos,
                retain_as_published: sub.options.retain_as_published,
                no_local: sub.options.no_local,
                identifiers: ids.collect(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(s: &str) -> TopicFilter {
        TopicFilter::try_from(s).unwrap()
    }

    fn topic(s: &str) -> TopicName {
        TopicName::try_from(s).unwrap()
    }

    fn sub(qos: QoS) -> Subscription {
        let options = SubscriptionOptions {
            qos,
            ..Default::default()
        };
        Subscription {
            options,
            identifier: None,
        }
    }

    fn sessions(router: &Router, t: &str) -> Vec<SessionId> {
        let mut s: Vec<_> = router
            .route(&topic(t))
            .into_iter()
            .map(|t| t.session)
            .collect();
        s.sort();
        s
    }

    #[test]
    fn routes_exact_plus_and_hash_filters() {
        let mut r = Router::new();
        r.subscribe(&filter("sport/tennis/player1"), 1, sub(QoS::AtMostOnce));
        r.subscribe(&filter("sport/+/player1"), 2, sub(QoS::AtMostOnce));
        r.subscribe(&filter("sport/#"), 3, sub(QoS::AtMostOnce));
        r.subscribe(&filter("#"), 4, sub(QoS::AtMostOnce));
        r.subscribe(&filter("sport/tennis"), 5, sub(QoS::AtMostOnce));
        assert_eq!(sessions(&r, "sport/tennis/player1"), [1, 2, 3, 4]);
        // §4.7.1.2: `sport/#` matches `sport` too.
        assert_eq!(sessions(&r, "sport"), [3, 4]);
        assert_eq!(sessions(&r, "sport/tennis"), [3, 4, 5]);
        assert_eq!(sessions(&r, "other"), [4]);
    }

    #[test]
    fn wildcards_at_the_first_level_do_not_match_dollar_topics() {
        // MQTT-4.7.2-1
        let mut r = Router::new();
        r.subscribe(&filter("#"), 1, sub(QoS::AtMostOnce));
        r.subscribe(&filter("+/monitor/Clients"), 2, sub(QoS::AtMostOnce));
        r.subscribe(&filter("$SYS/#"), 3, sub(QoS::AtMostOnce));
        r.subscribe(&filter("$SYS/monitor/+"), 4, sub(QoS::AtMostOnce));
        assert_eq!(sessions(&r, "$SYS/monitor/Clients"), [3, 4]);
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_at_the_highest_qos_with_all_identifiers() {
        // MQTT-3.3.4-2, MQTT-3.3.4-3 (5.0)
        let mut r = Router::new();
        let mut a = sub(QoS::AtMostOnce);
        a.identifier = Some(1);
        let mut b = sub(QoS::ExactlyOnce);
        b.identifier = Some(2);
        r.subscribe(&filter("a/+"), 7, a);
        r.subscribe(&filter("a/#"), 7, b);
        let targets = r.route(&topic("a/b"));
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].qos, QoS::ExactlyOnce);
        let mut ids = targets[0].identifiers.clone();
        ids.sort();
        assert_eq!(ids, [1, 2]);
    }

    #[test]
    fn resubscribing_replaces_and_unsubscribing_leaves_no_trace() {
        let mut r = Router::new();
        assert!(!r.subscribe(&filter("a/+/c"), 1, sub(QoS::AtMostOnce)));
        assert!(r.subscribe(&filter("a/+/c"), 1, sub(QoS::AtLeastOnce)));
        assert!(!r.subscribe(&filter("a/#"), 1, sub(QoS::AtMostOnce)));
        assert_eq!(r.len(), 2);
        assert_eq!(r.route(&topic("a/b/c"))[0].qos, QoS::AtLeastOnce);
        assert!(r.unsubscribe(&filter("a/+/c"), 1));
        assert!(!r.unsubscribe(&filter("a/+/c"), 1));
        assert!(r.unsubscribe(&filter("a/#"), 1));
        assert!(r.is_empty());
        assert!(r.root.is_empty(), "pruned");
    }
}
