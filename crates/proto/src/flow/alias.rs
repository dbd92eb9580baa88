//! Topic aliases (MQTT 5.0 §3.3.2.3.4), one table per direction. They live
//! and die with the network connection (MQTT-3.3.2-7), so none of this is
//! part of the session state. The tables are boxed and made on first use:
//! most connections use no aliases, and every connection carries both.

use std::collections::HashMap;

use crate::codec::Publish;
use crate::error::Violation;
use crate::topic::TopicName;

/// Aliases the peer set for the topics it sends us.
#[derive(Debug, Default)]
pub(crate) struct Inbound {
    maximum: u16,
    // Boxed for size: an unused `HashMap` is 48 bytes in every connection.
    #[allow(clippy::box_collection)]
    topics: Option<Box<HashMap<u16, TopicName>>>,
}

impl Inbound {
    pub fn new(maximum: u16) -> Inbound {
        Inbound {
            maximum,
            topics: None,
        }
    }

    /// Resolves a received PUBLISH: records a new alias or fills in the topic
    /// of one that names its topic by alias alone. The alias property is
    /// removed so nothing downstream mistakes it for the message's own.
    pub fn resolve(&mut self, publish: &mut Publish) -> Result<(), Violation> {
        // `get_mut`, not `DerefMut`: a PUBLISH without properties must not
        // allocate an empty set here.
        let alias = publish
            .properties
            .get_mut()
            .and_then(|p| p.topic_alias.take());
        let Some(alias) = alias else {
            return Ok(());
        };
        // MQTT-3.3.2-8 / -9 (5.0): 0 and values above our maximum are invalid.
        if alias == 0 || alias > self.maximum {
            return Err(Violation::TopicAliasInvalid(alias));
        }
        if publish.topic.is_empty() {
            // §3.3.2.3.4: an alias never set on this connection is a
            // Protocol Error.
            let topic = self.topics.as_ref().and_then(|t| t.get(&alias));
            let topic = topic.ok_or(Violation::UnexpectedPacket(
                "PUBLISH with an unknown Topic Alias and no topic",
            ))?;
            publish.topic = topic.clone();
        } else {
            let topics = self.topics.get_or_insert_with(Box::default);
            topics.insert(alias, publish.topic.clone());
        }
        Ok(())
    }
}

/// Aliases we set for the topics we send.
#[derive(Debug, Default)]
pub(crate) struct Outbound {
    maximum: u16,
    #[allow(clippy::box_collection)]
    aliases: Option<Box<HashMap<TopicName, u16>>>,
}

impl Outbound {
    pub fn new(maximum: u16) -> Outbound {
        Outbound {
            maximum,
            aliases: None,
        }
    }

    /// Applies an alias to a PUBLISH about to be sent: the first PUBLISH on a
    /// topic sets the alias, later ones send an empty topic. Once the
    /// peer's maximum is used up, new topics go by name (MQTT-3.3.2-10: never
    /// above the peer's Topic Alias Maximum).
    pub fn apply(&mut self, publish: &mut Publish, room: bool) {
        if self.maximum == 0 || publish.properties.topic_alias.is_some() {
            return;
        }
        let aliases = self.aliases.get_or_insert_with(Box::default);
        if let Some(&alias) = aliases.get(&publish.topic) {
            publish.properties.topic_alias = Some(alias);
            publish.topic = TopicName::empty();
            return;
        }
        let next = aliases.len() as u16 + 1;
        if room && next <= self.maximum {
            aliases.insert(publish.topic.clone(), next);
            publish.properties.topic_alias = Some(next);
        }
    }
}
