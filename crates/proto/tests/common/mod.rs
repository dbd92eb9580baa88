//! Helpers shared by the codec test files: building raw packets byte by
//! byte, and decoding or encoding them through the public API only.

// Each test file is its own crate and uses a different part of this module.
#![allow(dead_code)]

use bytes::BytesMut;
use pigeon_proto::codec::MAX_PACKET_SIZE;
use pigeon_proto::error::Malformed;
use pigeon_proto::string::{MqttStr, StringError};
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Error, Packet, PacketId, PacketType, Protocol, ReasonCode};

/// Every version the codec speaks.
pub const ALL_VERSIONS: [Protocol; 3] = [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5];
/// The versions without properties and reason codes.
pub const V3_VERSIONS: [Protocol; 2] = [Protocol::V3_1, Protocol::V3_1_1];

pub const MALFORMED: ReasonCode = ReasonCode::MALFORMED_PACKET;
pub const PROTOCOL_ERROR: ReasonCode = ReasonCode::PROTOCOL_ERROR;

/// The error for a string field that is not an MQTT UTF-8 string.
pub fn bad_string(field: &'static str, error: StringError) -> Malformed {
    Malformed::String { field, error }
}

/// The error for a first byte with the wrong fixed-header flags.
pub fn flags_error(packet: PacketType, flags: u8) -> Malformed {
    Malformed::FixedHeaderFlags {
        packet: packet.name(),
        flags,
    }
}

/// A packet with this first byte and body; the remaining length is computed
/// (and encoded in its shortest form).
pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A two-byte length prefix followed by `bytes`: a string or binary field.
pub fn field(bytes: &[u8]) -> Vec<u8> {
    let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// Properties as they go on the wire: a one-byte length (enough for these
/// tests) and the raw properties.
pub fn props(raw: &[u8]) -> Vec<u8> {
    assert!(raw.len() < 128, "use a longer length encoding");
    let mut out = vec![raw.len() as u8];
    out.extend_from_slice(raw);
    out
}

/// A QoS 0 PUBLISH with this raw topic, no properties and payload "x".
pub fn publish_with_topic(topic: &[u8], protocol: Protocol) -> Vec<u8> {
    let mut body = field(topic);
    if protocol.is_v5() {
        body.push(0);
    }
    body.push(b'x');
    frame(0x30, &body)
}

/// A CONNECT for `protocol` with these flags, keep-alive 10, the given raw
/// CONNECT properties (v5 only) and the raw payload.
pub fn connect_with(protocol: Protocol, flags: u8, properties: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = field(protocol.name().as_bytes());
    body.extend_from_slice(&[protocol.level(), flags, 0, 10]);
    if protocol.is_v5() {
        body.extend_from_slice(&props(properties));
    }
    body.extend_from_slice(payload);
    frame(0x10, &body)
}

/// A SUBSCRIBE to "a/b" with this raw subscription options byte.
pub fn subscribe_with_options(options: u8, protocol: Protocol) -> Vec<u8> {
    let mut body = vec![0, 1];
    if protocol.is_v5() {
        body.push(0);
    }
    body.extend(field(b"a/b"));
    body.push(options);
    frame(0x82, &body)
}

/// Decodes `bytes` as one whole packet, checking that nothing is left over.
pub fn decode_bytes(bytes: &[u8], protocol: Protocol) -> Result<Option<Packet>, Error> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode(&mut buf, protocol, MAX_PACKET_SIZE)?;
    if packet.is_some() {
        assert!(buf.is_empty(), "{} bytes left after the packet", buf.len());
    }
    Ok(packet)
}

/// Decodes `bytes`, which must be one valid packet.
pub fn decode_ok(bytes: &[u8], protocol: Protocol) -> Packet {
    match decode_bytes(bytes, protocol) {
        Ok(Some(packet)) => packet,
        Ok(None) => panic!("incomplete packet {bytes:02X?}"),
        Err(error) => panic!("{error} decoding {bytes:02X?} as {protocol}"),
    }
}

/// Decodes `bytes`, which must fail; returns the error.
pub fn decode_err(bytes: &[u8], protocol: Protocol) -> Error {
    match decode_bytes(bytes, protocol) {
        Err(error) => error,
        Ok(packet) => panic!("{bytes:02X?} as {protocol} decoded to {packet:?}"),
    }
}

/// Decodes `bytes` and checks both the error and the reason code it maps to.
pub fn assert_decode_error(
    bytes: &[u8],
    protocol: Protocol,
    expected: impl Into<Error>,
    reason: ReasonCode,
) {
    let error = decode_err(bytes, protocol);
    assert_eq!(error, expected.into(), "{bytes:02X?} as {protocol}");
    assert_eq!(
        error.reason_code(),
        Some(reason),
        "{bytes:02X?} as {protocol}"
    );
}

/// Encodes `packet`, which must be encodable.
pub fn encode(packet: &Packet, protocol: Protocol) -> BytesMut {
    let mut buf = BytesMut::new();
    match packet.encode(protocol, &mut buf) {
        Ok(()) => buf,
        Err(error) => panic!("{error} encoding {packet:?} as {protocol}"),
    }
}

/// An MQTT string from a literal.
pub fn s(text: &str) -> MqttStr {
    MqttStr::try_from(text).expect("valid MQTT string")
}

/// A topic name from a literal.
pub fn topic(text: &str) -> TopicName {
    TopicName::try_from(text).expect("valid topic name")
}

/// A packet identifier from a non-zero literal.
pub fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero packet identifier")
}
