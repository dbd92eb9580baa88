//! placeholder overview
pub mod codec;
pub mod error;
pub mod flow;
pub mod properties;
pub mod reason;
pub mod string;
pub mod topic;
mod types;

pub use codec::{decode, Packet};
pub use error::Error;
pub use reason::ReasonCode;
pub use types::{PacketId, PacketType, Protocol, QoS};
