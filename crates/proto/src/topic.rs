//! Temporary stand-in for the topic module (being written on branch `topic`).
use crate::string::{MqttStr, StringError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TopicName(MqttStr);
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    #[error("empty")]
    Empty,
    #[error("wildcard")]
    WildcardInTopicName,
    #[error("string {0}")]
    InvalidString(StringError),
}
impl TopicName {
    pub fn new(s: MqttStr) -> Result<Self, TopicError> {
        if s.is_empty() {
            return Err(TopicError::Empty);
        }
        if s.contains(['+', '#']) {
            return Err(TopicError::WildcardInTopicName);
        }
        Ok(TopicName(s))
    }
    pub(crate) fn empty() -> Self {
        TopicName(MqttStr::new())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
    pub fn as_mqtt_str(&self) -> &MqttStr {
        &self.0
    }
}
impl TryFrom<&str> for TopicName {
    type Error = TopicError;
    fn try_from(s: &str) -> Result<Self, TopicError> {
        Self::new(MqttStr::try_from(s).map_err(TopicError::InvalidString)?)
    }
}
