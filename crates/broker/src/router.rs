//! The subscription trie: which sessions want a topic.
//!
//! Filters are stored level by level; a lookup walks the topic's levels once,
//! following the exact child, the `+` child and collecting `#` subscribers
//! on the way. Wildcards at the first level never match a topic starting
//! with `$` (MQTT-4.7.2-1). A session with several matching subscriptions
//! gets one delivery at the highest QoS, carrying every matching
//! subscription identifier (MQTT-3.3.4-2, -3, -5 in 5.0). The broker holds
//! the router under a read-write lock: many publishers look up at once.
//!
//! Shared subscriptions (`$share/GROUP/FILTER`, §4.8.2) live in the node of
//! their filter, one [`ShareGroup`] per ShareName. A lookup returns the matching
//! groups beside the sessions; the broker picks one member of each. A
//! group is replaced, not changed, when its members change, so a lookup
//! hands out a cheap `Arc` of it and the lock is not held while picking.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use pigeon_proto::codec::SubscriptionOptions;
use pigeon_proto::topic::{Subscription as Parsed, TopicFilter, TopicName};
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

/// The sessions of one shared subscription: one ShareName on one filter.
#[derive(Debug)]
pub struct ShareGroup {
    /// The subscription as clients write it, `$share/GROUP/FILTER`: what a
    /// session's subscriptions are keyed by.
    pub key: TopicFilter,
    /// Its members, in the order they joined.
    pub members: Vec<(SessionId, Subscription)>,
    /// Round-robin position, carried over when the group is replaced.
    pub next: Arc<AtomicUsize>,
}

/// Shared subscriptions whose filter ends at a node, by ShareName.
#[derive(Debug, Default)]
struct SharedAt {
    /// Filters ending here with `#`.
    hash: HashMap<Box<str>, Arc<ShareGroup>>,
    /// Filters ending exactly here.
    exact: HashMap<Box<str>, Arc<ShareGroup>>,
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Subscribers whose filter ends here with `#`.
    hash: HashMap<SessionId, Subscription>,
    /// Subscribers whose filter ends exactly here.
    exact: HashMap<SessionId, Subscription>,
    /// Shared subscriptions ending here (most nodes have none).
    shared: Option<Box<SharedAt>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.exact.is_empty()
            && self.shared.is_none()
    }
}

/// What a topic matches: sessions, and shared groups to pick one member of.
#[derive(Debug, Default)]
pub struct Routes {
    /// Sessions with a non-shared matching subscription, each once.
    pub targets: Vec<Target>,
    /// Shared subscription groups with a matching filter.
    pub groups: Vec<Arc<ShareGroup>>,
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
        if let Some((name, inner)) = shared_parts(filter) {
            let existed = self.join(filter, &name, &inner, session, sub);
            self.count += usize::from(!existed);
            return existed;
        }
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
        let shared = shared_parts(filter);
        let at = shared.as_ref().map_or(filter, |(_, inner)| inner);
        let Some(node) = self.node_mut(at, false) else {
            return false;
        };
        let removed = match (&shared, ends_with_hash(at)) {
            (Some((name, _)), hash) => leave(node, name, hash, session),
            (None, true) => node.hash.remove(&session).is_some(),
            (None, false) => node.exact.remove(&session).is_some(),
        };
        if removed {
            self.count -= 1;
            prune(
                &mut self.root,
                filter_levels(at).collect::<Vec<_>>().as_slice(),
            );
        }
        removed
    }

    /// Adds `session` to the group `name` on `inner` (or replaces its
    /// subscription there); returns whether it was a member.
    fn join(
        &mut self,
        key: &TopicFilter,
        name: &str,
        inner: &TopicFilter,
        session: SessionId,
        sub: Subscription,
    ) -> bool {
        let hash = ends_with_hash(inner);
        let Some(node) = self.node_mut(inner, true) else {
            return false;
        };
        let at = node.shared.get_or_insert_with(Box::default);
        let groups = if hash { &mut at.hash } else { &mut at.exact };
        let old = groups.get(name);
        let mut members = old.map(|g| g.members.clone()).unwrap_or_default();
        let next = old.map(|g| g.next.clone()).unwrap_or_default();
        let existed = match members.iter_mut().find(|(s, _)| *s == session) {
            Some(member) => {
                member.1 = sub;
                true
            }
            None => {
                members.push((session, sub));
                false
            }
        };
        let group = ShareGroup {
            key: key.clone(),
            members,
            next,
        };
        groups.insert(name.into(), Arc::new(group));
        existed
    }

    /// The shared subscription group `key` (`$share/GROUP/FILTER`), if it
    /// has members.
    pub fn group(&self, key: &TopicFilter) -> Option<Arc<ShareGroup>> {
        let (name, inner) = shared_parts(key)?;
        let mut node = &self.root;
        for level in filter_levels(&inner) {
            node = match level {
                "+" => node.plus.as_deref()?,
                l => node.children.get(l)?,
            };
        }
        let at = node.shared.as_deref()?;
        let groups = if ends_with_hash(&inner) {
            &at.hash
        } else {
            &at.exact
        };
        groups.get(name.as_str()).cloned()
    }

    /// Every session with a subscription matching `topic`, each once.
    pub fn route(&self, topic: &TopicName) -> Vec<Target> {
        self.routes(topic).targets
    }

    /// Every session with a non-shared subscription matching `topic`, each
    /// once, and every shared group whose filter matches.
    pub fn routes(&self, topic: &TopicName) -> Routes {
        let mut found: Vec<Target> = Vec::new();
        let mut groups: Vec<Arc<ShareGroup>> = Vec::new();
        let system = topic.as_str().starts_with('$');
        let mut frontier: Vec<&Node> = vec![&self.root];
        let mut next: Vec<&Node> = Vec::new();
        for (depth, level) in topic.as_str().split('/').enumerate() {
            let wildcards = !(system && depth == 0);
            for node in frontier.drain(..) {
                if wildcards {
                    collect(&node.hash, &mut found);
                    if let Some(at) = &node.shared {
                        groups.extend(at.hash.values().cloned());
                    }
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
            if let Some(at) = &node.shared {
                groups.extend(at.hash.values().cloned());
                groups.extend(at.exact.values().cloned());
            }
        }
        Routes {
            targets: found,
            groups,
        }
    }
}

/// The ShareName and inner filter of a `$share/GROUP/FILTER` subscription.
fn shared_parts(filter: &TopicFilter) -> Option<(pigeon_proto::string::MqttStr, TopicFilter)> {
    if !filter.as_str().starts_with("$share/") {
        return None;
    }
    match Parsed::parse(filter.as_mqtt_str().clone()) {
        Ok(Parsed::Shared(shared)) => Some(shared.into_parts()),
        _ => None,
    }
}

/// Removes `session` from the group `name` at `node`; returns whether it
/// was a member. An empty group goes, and so does an empty `SharedAt`.
fn leave(node: &mut Node, name: &str, hash: bool, session: SessionId) -> bool {
    let Some(at) = node.shared.as_deref_mut() else {
        return false;
    };
    let groups = if hash { &mut at.hash } else { &mut at.exact };
    let Some(old) = groups.get(name) else {
        return false;
    };
    let members: Vec<_> = old
        .members
        .iter()
        .filter(|(s, _)| *s != session)
        .cloned()
        .collect();
    if members.len() == old.members.len() {
        return false;
    }
    if members.is_empty() {
        groups.remove(name);
    } else {
        let group = ShareGroup {
            key: old.key.clone(),
            members,
            next: old.next.clone(),
        };
        groups.insert(name.into(), Arc::new(group));
    }
    if at.hash.is_empty() && at.exact.is_empty() {
        node.shared = None;
    }
    true
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

    #[test]
    fn shared_groups_are_found_by_their_filter_and_left_without_a_trace() {
        let mut r = Router::new();
        assert!(!r.subscribe(&filter("$share/g/a/+"), 1, sub(QoS::AtLeastOnce)));
        assert!(!r.subscribe(&filter("$share/g/a/+"), 2, sub(QoS::AtMostOnce)));
        assert!(!r.subscribe(&filter("$share/h/a/#"), 1, sub(QoS::AtMostOnce)));
        assert!(r.subscribe(&filter("$share/g/a/+"), 2, sub(QoS::ExactlyOnce)));
        assert_eq!(r.len(), 3);
        let routes = r.routes(&topic("a/b"));
        assert!(
            routes.targets.is_empty(),
            "shared members are not plain targets"
        );
        let mut keys: Vec<&str> = routes.groups.iter().map(|g| g.key.as_str()).collect();
        keys.sort();
        assert_eq!(keys, ["$share/g/a/+", "$share/h/a/#"]);
        let g = r.group(&filter("$share/g/a/+")).unwrap();
        assert_eq!(
            g.members,
            [(1, sub(QoS::AtLeastOnce)), (2, sub(QoS::ExactlyOnce))]
        );
        // `$share/h/#`'s filter still skips `$` topics (MQTT-4.7.2-1).
        r.subscribe(&filter("$share/h/#"), 3, sub(QoS::AtMostOnce));
        assert!(r.routes(&topic("$SYS/x")).groups.is_empty());
        for (f, s) in [
            ("$share/g/a/+", 1),
            ("$share/g/a/+", 2),
            ("$share/h/a/#", 1),
            ("$share/h/#", 3),
        ] {
            assert!(r.unsubscribe(&filter(f), s), "{f} {s}");
        }
        assert!(r.is_empty());
        assert!(r.root.is_empty(), "pruned");
    }
}
