//! Primitive data types of §1.5: integers, variable byte integers, strings,
//! binary data. Reading is bounds-checked against the packet body; nothing
//! a peer declares is trusted before the bytes are there.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::Malformed;
use crate::string::MqttStr;
use crate::QoS;

/// Largest value a variable byte integer can hold (four bytes).
pub const MAX_VARINT: u32 = 268_435_455;

/// Reads fields out of one packet's body. Each read checks the length first,
/// so a lying length prefix is a `Truncated` error, never an overrun.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn need(&self, n: usize, what: &'static str) -> Result<(), Malformed> {
        if self.buf.len() < n {
            return Err(Malformed::Truncated(what));
        }
        Ok(())
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        self.need(1, what)?;
        Ok(self.buf.get_u8())
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, Malformed> {
        self.need(2, what)?;
        Ok(self.buf.get_u16())
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, Malformed> {
        self.need(4, what)?;
        Ok(self.buf.get_u32())
    }

    pub fn varint(&mut self, what: &'static str) -> Result<u32, Malformed> {
        // Property lengths and identifiers are nearly always one byte.
        if let Some(&byte) = self.buf.first().filter(|&&b| b < 0x80) {
            self.buf.advance(1);
            return Ok(u32::from(byte));
        }
        match read_varint(&self.buf)? {
            Some((value, len)) => {
                self.buf.advance(len);
                Ok(value)
            }
            None => Err(Malformed::Truncated(what)),
        }
    }

    /// Two-byte length, then that many bytes, shared with the input.
    pub fn binary(&mut self, what: &'static str) -> Result<Bytes, Malformed> {
        let len = usize::from(self.u16(what)?);
        self.take(len, what)
    }

    pub fn string(&mut self, what: &'static str) -> Result<MqttStr, Malformed> {
        let raw = self.binary(what)?;
        MqttStr::from_bytes(raw).map_err(|error| Malformed::String { field: what, error })
    }

    pub fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, Malformed> {
        self.need(len, what)?;
        Ok(self.buf.split_to(len))
    }

    /// Everything left (the PUBLISH payload).
    pub fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails if any bytes remain after the last field (catalogue F8).
    pub fn finish(self) -> Result<(), Malformed> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(Malformed::TrailingBytes(n)),
        }
    }
}

/// Decodes a variable byte integer from the front of `buf`: `Ok(None)` if
/// more bytes are needed, else the value and its encoded length. Rejects a
/// fifth byte and non-minimal encodings (MQTT-1.5.5-1).
pub(crate) fn read_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, Malformed> {
    let mut value = 0u32;
    for (i, &byte) in buf.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A last byte of zero after a continuation means a shorter
            // encoding existed.
            if i > 0 && byte == 0 {
                return Err(Malformed::VarIntNotMinimal);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        return Err(Malformed::VarIntTooLong);
    }
    Ok(None)
}

/// Encoded length of a variable byte integer.
pub(crate) const fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub(crate) fn put_varint(buf: &mut BytesMut, mut value: usize) {
    loop {
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Writes a two-byte length and the bytes. Callers hold `MqttStr` or data
/// already bounded to 65,535 bytes by their constructors; longer input is
/// truncated in the prefix, so encoders check `binary_fits` first.
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8]) {
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

pub(crate) fn put_str(buf: &mut BytesMut, s: &MqttStr) {
    put_binary(buf, s.as_bytes());
}

/// Whether `data` fits a two-byte length prefix.
pub(crate) fn binary_fits(data: &[u8]) -> bool {
    data.len() <= usize::from(u16::MAX)
}

pub(crate) fn qos(bits: u8) -> Result<QoS, Malformed> {
    QoS::from_u8(bits).ok_or(Malformed::InvalidQos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_examples_from_the_spec_round_trip() {
        // MQTT-1.5.5-1: the table of §1.5.5 at each size boundary.
        for (value, len) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (268_435_455, 4),
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), len);
            assert_eq!(varint_len(value), len);
            assert_eq!(read_varint(&buf), Ok(Some((value as u32, len))));
        }
    }

    #[test]
    fn varint_with_a_fifth_byte_is_malformed() {
        // Catalogue F1.
        assert_eq!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(Malformed::VarIntTooLong)
        );
    }

    #[test]
    fn varint_not_in_shortest_form_is_malformed() {
        // MQTT-1.5.5-1; catalogue F2.
        assert_eq!(read_varint(&[0x80, 0x00]), Err(Malformed::VarIntNotMinimal));
        assert_eq!(
            read_varint(&[0xFF, 0x80, 0x00]),
            Err(Malformed::VarIntNotMinimal)
        );
    }

    #[test]
    fn incomplete_varint_asks_for_more_bytes() {
        assert_eq!(read_varint(&[0x80, 0x80]), Ok(None));
        assert_eq!(read_varint(&[]), Ok(None));
    }

    #[test]
    fn string_length_beyond_the_body_is_truncated_not_an_overrun() {
        // Catalogue F9.
        let mut r = Reader::new(Bytes::from_static(&[0xFF, 0xFF, b'a', b'b']));
        assert_eq!(r.string("topic"), Err(Malformed::Truncated("topic")));
    }
}
