//! Where state that must outlive the process goes. The broker calls the
//! store at every point where durable state changes; this issue ships the
//! in-memory store, and the durable one (redb) implements the same trait,
//! so durability is not a retrofit.

use std::fmt::Debug;

use pigeon_proto::codec::Publish;
use pigeon_proto::topic::TopicName;

/// Durable state of the broker.
pub trait Store: Debug + Send + Sync {
    /// A retained message was set or replaced.
    fn put_retained(&self, message: &Publish);
    /// A retained message was cleared.
    fn remove_retained(&self, topic: &TopicName);
    /// A short name for the start-up line (`memory`, `sync`, …).
    fn mode(&self) -> &'static str;
}

/// Keeps nothing beyond what the broker holds in memory: state is lost
/// when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn put_retained(&self, _message: &Publish) {}
    fn remove_retained(&self, _topic: &TopicName) {}
    fn mode(&self) -> &'static str {
        "memory (nothing is written to disk; the durable store comes next)"
    }
}
