//! Keep-alive (MQTT 5.0 §3.1.2.10): the client pings when it has been quiet
//! for the keep-alive period; the server closes a connection it has heard
//! nothing on for one and a half periods (MQTT-3.1.2-22 in 5.0).

use std::time::Instant;

use super::{Connection, State};
use crate::error::{Error, Violation};
use crate::Packet;

impl Connection {
    pub(super) fn keep_alive_deadline(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() {
            return None;
        }
        if self.is_server() {
            return Some(self.last_received? + self.keep_alive * 3 / 2);
        }
        // Waiting for PINGRESP, or for the next time to ping.
        match self.ping_sent {
            Some(sent) => Some(sent + self.keep_alive),
            None => Some(self.last_sent.or(self.last_received)? + self.keep_alive),
        }
    }

    /// Handles the deadline from [`Connection::poll_timeout`]. An `Err`
    /// means the connection timed out and is closed.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Error> {
        let Some(deadline) = self.poll_timeout() else {
            return Ok(());
        };
        if now < deadline {
            return Ok(());
        }
        let timed_out = match self.state {
            State::AwaitConnect | State::AwaitConnAck => true,
            _ => self.is_server() || self.ping_sent.is_some(),
        };
        if timed_out {
            let error = Error::from(Violation::KeepAliveTimeout);
            self.fail(&error);
            return Err(error);
        }
        self.ping_sent = Some(now);
        self.transmit.push_back(Packet::PingReq);
        Ok(())
    }
}
