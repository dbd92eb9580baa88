//! The decoding cases of the bad-input catalogue (reliability.md §4.1–4.7),
//! each with the exact error and the reason code it maps to. The catalogue
//! id is in a comment. Cases that are the flow's or the broker's job (a
//! second CONNECT, alias tables, authorization) are not here; cases the
//! codec must let through so that a later layer can answer them precisely
//! (per-filter SUBACK codes, an unknown topic alias) are tested for exactly
//! that. F10 is in `codec_roundtrip.rs`.

mod common;

use bytes::BytesMut;
use common::*;
use pigeon_proto::codec::MAX_PACKET_SIZE;
use pigeon_proto::error::{Incompatible, Malformed, Violation};
use pigeon_proto::string::StringError;
use pigeon_proto::{decode, Error, Packet, PacketType, Protocol, ReasonCode};

// §4.1 Framing

#[test]
fn remaining_length_with_a_fifth_byte_is_malformed_without_reading_further() {
    // F1: `30 FF FF FF FF 01`. The error comes from the fourth length byte;
    // what follows is never looked at.
    for protocol in ALL_VERSIONS {
        for bytes in [
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01][..],
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
        ] {
            assert_decode_error(bytes, protocol, Malformed::VarIntTooLong, MALFORMED);
        }
    }
}

#[test]
fn remaining_length_not_in_its_shortest_form_is_malformed() {
    // F2: `C0 80 00`, a PINGREQ whose length 0 takes two bytes. Strict, as
    // MQTT-1.5.5-1 says: such a packet would not re-encode to its bytes.
    for protocol in ALL_VERSIONS {
        assert_decode_error(
            &[0xC0, 0x80, 0x00],
            protocol,
            Malformed::VarIntNotMinimal,
            MALFORMED,
        );
    }
}

/// A PUBLISH header declaring the largest remaining length, then ten bytes.
fn huge_publish_prefix() -> Vec<u8> {
    let mut bytes = vec![0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    bytes.extend_from_slice(&[0, 1, b'a', 0, 0, 0, 0, 0, 0, 0]);
    bytes
}

#[test]
fn declared_length_above_the_maximum_packet_size_is_refused_at_once() {
    // F3: 268,435,455 declared with a 1 MiB limit → 0x95 from the fixed
    // header alone.
    let mut buf = BytesMut::from(&huge_publish_prefix()[..]);
    let error = decode(&mut buf, Protocol::V5, 1 << 20).unwrap_err();
    let expected = Violation::PacketTooLarge {
        size: 1 + 4 + 268_435_455,
        max: 1 << 20,
    };
    assert_eq!(error, expected.into());
    assert_eq!(error.reason_code(), Some(ReasonCode::PACKET_TOO_LARGE));
}

#[test]
fn declared_length_within_the_limit_waits_without_growing_the_buffer() {
    // F3: under the limit, the ten bytes are kept and nothing is reserved
    // for the declared size; the driver closes on its read timeout.
    let bytes = huge_publish_prefix();
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&bytes);
    let capacity = buf.capacity();
    for protocol in ALL_VERSIONS {
        assert_eq!(decode(&mut buf, protocol, MAX_PACKET_SIZE), Ok(None));
        assert_eq!((&buf[..], buf.capacity()), (&bytes[..], capacity));
    }
}

#[test]
fn every_packet_type_with_a_huge_length_is_refused_right_after_its_fixed_header() {
    // F4: each of the 14 non-CONNECT types as a first packet, with only
    // its 5-byte fixed header in the buffer and a pre-CONNECT cap of 64 KiB.
    for protocol in ALL_VERSIONS {
        let last_type = if protocol.is_v5() { 15 } else { 14 };
        for raw_type in 2..=last_type {
            let kind = PacketType::from_u8(raw_type).expect("known type");
            let header = [
                raw_type << 4 | kind.required_flags(),
                0xFF,
                0xFF,
                0xFF,
                0x7F,
            ];
            let mut buf = BytesMut::from(&header[..]);
            let error = decode(&mut buf, protocol, 64 * 1024).unwrap_err();
            let expected = Violation::PacketTooLarge {
                size: 268_435_460,
                max: 64 * 1024,
            };
            assert_eq!(error, expected.into(), "{} in {protocol}", kind.name());
            assert_eq!(error.reason_code(), Some(ReasonCode::PACKET_TOO_LARGE));
        }
    }
}

#[test]
fn packet_type_0_is_refused_from_its_first_byte() {
    // F5
    for protocol in ALL_VERSIONS {
        for bytes in [&[0x00][..], &[0x00, 0x00], &[0x0F, 0x02, 0x00, 0x01]] {
            assert_decode_error(bytes, protocol, Malformed::ReservedPacketType(0), MALFORMED);
        }
    }
}

#[test]
fn fixed_header_flags_other_than_the_required_ones_are_malformed() {
    // F6: PUBREL `60`, SUBSCRIBE `80`, UNSUBSCRIBE `A0`, PINGREQ `C1`,
    // CONNECT `11`.
    let cases = [
        (0x60, "PUBREL", 0b0000),
        (0x80, "SUBSCRIBE", 0b0000),
        (0xA0, "UNSUBSCRIBE", 0b0000),
        (0xC1, "PINGREQ", 0b0001),
        (0x11, "CONNECT", 0b0001),
    ];
    for protocol in ALL_VERSIONS {
        for (first, packet, flags) in cases {
            let expected = Malformed::FixedHeaderFlags { packet, flags };
            assert_decode_error(&[first, 0x00], protocol, expected, MALFORMED);
        }
    }
}

#[test]
fn truncated_packet_is_not_decoded_in_part() {
    // F7: every proper prefix of a packet asks for more bytes and leaves
    // the buffer as it was; nothing of it is processed.
    let mut payload = field(b"client");
    payload.extend(field(b"user"));
    payload.extend(field(b"secret"));
    let bytes = connect_with(Protocol::V5, 0xC2, &[0x11, 0, 0, 0, 5], &payload);
    assert!(decode_bytes(&bytes, Protocol::V5).expect("valid").is_some());
    for len in 0..bytes.len() {
        let mut buf = BytesMut::from(&bytes[..len]);
        assert_eq!(
            decode(&mut buf, Protocol::V5, MAX_PACKET_SIZE),
            Ok(None),
            "{len} bytes"
        );
        assert_eq!(&buf[..], &bytes[..len]);
    }
}

#[test]
fn bytes_after_the_last_field_are_malformed() {
    // F8: PINGREQ of length 1, a v3 DISCONNECT of length 2, a padded v3.1.1
    // UNSUBACK, a padded v5 CONNACK. (A SUBACK padded with valid codes
    // cannot be told from one with more codes; the client flow compares the
    // count with its SUBSCRIBE, catalogue CL2.)
    let cases: [(&[u8], Protocol, usize); 4] = [
        (&[0xC0, 0x01, 0x00], Protocol::V3_1_1, 1),
        (&[0xE0, 0x02, 0x00, 0x00], Protocol::V3_1_1, 2),
        (&[0xB0, 0x03, 0x00, 0x01, 0x00], Protocol::V3_1_1, 1),
        (&[0x20, 0x04, 0x00, 0x00, 0x00, 0x00], Protocol::V5, 1),
    ];
    for (bytes, protocol, extra) in cases {
        assert_decode_error(bytes, protocol, Malformed::TrailingBytes(extra), MALFORMED);
    }
}

#[test]
fn string_length_running_past_the_packet_is_malformed() {
    // F9: topic length `FF FF` in a 7-byte PUBLISH; no arithmetic on the
    // declared length before it is checked against what is there.
    for protocol in ALL_VERSIONS {
        let bytes = [0x30, 0x05, 0xFF, 0xFF, b'a', b'b', b'c'];
        assert_decode_error(
            &bytes,
            protocol,
            Malformed::Truncated("topic name"),
            MALFORMED,
        );
    }
}

// §4.2 CONNECT

fn connect_named(name: &[u8], level: u8) -> Vec<u8> {
    let mut body = field(name);
    body.extend_from_slice(&[level, 0x02, 0, 10]);
    if level == 5 {
        body.push(0);
    }
    body.extend(field(b"c"));
    frame(0x10, &body)
}

#[test]
fn protocol_name_mqtx_lowercase_or_empty_is_an_unsupported_protocol() {
    // C2: v5 may answer CONNACK 0x84 before closing; v3 closes.
    for name in [&b"MQTX"[..], b"mqtt", b""] {
        for level in [4, 5] {
            let reason = ReasonCode::UNSUPPORTED_PROTOCOL_VERSION;
            let bytes = connect_named(name, level);
            assert_decode_error(&bytes, Protocol::V5, Incompatible::ProtocolName, reason);
        }
    }
}

#[test]
fn protocol_level_other_than_3_4_or_5_is_an_unsupported_protocol_version() {
    // C3: levels 0, 2, 6 and 255 with the name "MQTT"; 0x84 goes out as
    // return code 0x01 in v3 (see codec_spec).
    for level in [0, 2, 6, 255] {
        let reason = ReasonCode::UNSUPPORTED_PROTOCOL_VERSION;
        let bytes = connect_named(b"MQTT", level);
        assert_decode_error(
            &bytes,
            Protocol::V3_1_1,
            Incompatible::ProtocolLevel(level),
            reason,
        );
    }
}

#[test]
fn reserved_connect_flag_is_malformed_whatever_else_is_set() {
    // C4: the reserved bit along with clean start and a user name.
    for protocol in ALL_VERSIONS {
        let mut payload = field(b"c");
        payload.extend(field(b"user"));
        let bytes = connect_with(protocol, 0x83, &[], &payload);
        let expected = Malformed::ReservedBit("CONNECT flags");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn will_qos_or_retain_without_will_flag_and_will_qos_3_are_malformed() {
    // C5: Will Flag 0 + Will QoS 1; Will Flag 0 + Will Retain 1; Will QoS 3.
    let without_will = Malformed::ConnectFlags("will QoS or retain without will flag");
    let cases = [
        (0x0A, without_will.clone()),
        (0x22, without_will),
        (0x1E, Malformed::InvalidQos),
    ];
    for protocol in ALL_VERSIONS {
        for (flags, expected) in cases.clone() {
            let bytes = connect_with(protocol, flags, &[], &field(b"c"));
            assert_decode_error(&bytes, protocol, expected, MALFORMED);
        }
    }
}

/// A v5 CONNECT whose will has these raw properties.
fn connect_with_will_properties(raw: &[u8]) -> Vec<u8> {
    let mut payload = field(b"c");
    payload.extend(props(raw));
    payload.extend(field(b"will/topic"));
    payload.extend(field(b"gone"));
    connect_with(Protocol::V5, 0x06, &[], &payload)
}

#[test]
fn will_properties_not_allowed_for_a_will_are_malformed() {
    // C7: Topic Alias, Subscription Identifier and Session Expiry Interval
    // (a CONNECT property) among the will properties.
    for raw in [&[0x23, 0, 1][..], &[0x0B, 1], &[0x11, 0, 0, 0, 1]] {
        let expected = Malformed::PropertyNotAllowed {
            property: raw[0],
            packet: "Will Properties",
        };
        assert_decode_error(
            &connect_with_will_properties(raw),
            Protocol::V5,
            expected,
            MALFORMED,
        );
    }
}

#[test]
fn will_property_of_the_wrong_type_is_malformed() {
    // C7: Content Type must be a UTF-8 string; these bytes are not.
    let mut raw = vec![0x03];
    raw.extend(field(b"\xC3\x28"));
    let expected = bad_string("content type", StringError::InvalidUtf8);
    assert_decode_error(
        &connect_with_will_properties(&raw),
        Protocol::V5,
        expected,
        MALFORMED,
    );
}

#[test]
fn v311_password_flag_without_user_name_flag_is_malformed_but_v5_allows_it() {
    // C8 (3.1.1 MQTT-3.1.2-22)
    let mut payload = field(b"c");
    payload.extend(field(b"secret"));
    let expected = Malformed::ConnectFlags("password without user name");
    let v311 = connect_with(Protocol::V3_1_1, 0x42, &[], &payload);
    assert_decode_error(&v311, Protocol::V3_1_1, expected, MALFORMED);
    let v5 = connect_with(Protocol::V5, 0x42, &[], &payload);
    assert!(matches!(decode_ok(&v5, Protocol::V5), Packet::Connect(_)));
}

#[test]
fn user_name_flag_and_user_name_field_must_agree() {
    // C9: flag set but field missing; flag clear but bytes present.
    for protocol in ALL_VERSIONS {
        let missing = connect_with(protocol, 0x82, &[], &field(b"c"));
        assert_decode_error(
            &missing,
            protocol,
            Malformed::Truncated("user name"),
            MALFORMED,
        );
        let mut payload = field(b"c");
        payload.extend(field(b"user"));
        let extra = connect_with(protocol, 0x02, &[], &payload);
        assert_decode_error(&extra, protocol, Malformed::TrailingBytes(6), MALFORMED);
    }
}

#[test]
fn forbidden_connect_property_values_are_protocol_errors() {
    // C15: Receive Maximum 0; Maximum Packet Size 0; Request Problem
    // Information 2; Session Expiry Interval twice.
    let cases: [(&[u8], Violation); 4] = [
        (&[0x21, 0, 0], Violation::InvalidPropertyValue(0x21)),
        (&[0x27, 0, 0, 0, 0], Violation::InvalidPropertyValue(0x27)),
        (&[0x17, 2], Violation::InvalidPropertyValue(0x17)),
        (
            &[0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2],
            Violation::DuplicateProperty(0x11),
        ),
    ];
    for (raw, expected) in cases {
        let bytes = connect_with(Protocol::V5, 0x02, raw, &field(b"c"));
        assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
    }
}

// §4.3 PUBLISH

#[test]
fn publish_with_qos_bits_11_is_malformed() {
    // P1
    for protocol in ALL_VERSIONS {
        let mut bytes = publish_with_topic(b"a/b", protocol);
        bytes[0] = 0x36;
        assert_decode_error(&bytes, protocol, Malformed::InvalidQos, MALFORMED);
    }
}

#[test]
fn publish_with_qos_0_and_dup_is_malformed() {
    // P2
    for protocol in ALL_VERSIONS {
        let mut bytes = publish_with_topic(b"a/b", protocol);
        bytes[0] = 0x38;
        assert_decode_error(&bytes, protocol, Malformed::DupOnQos0, MALFORMED);
    }
}

#[test]
fn publish_with_an_empty_topic_and_no_alias_is_a_protocol_error() {
    // P3: in v3 (where no alias exists) and in v5 without an alias.
    for protocol in ALL_VERSIONS {
        let bytes = publish_with_topic(b"", protocol);
        let expected = Violation::EmptyTopicWithoutAlias;
        assert_decode_error(&bytes, protocol, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn publish_with_an_empty_topic_and_an_alias_reaches_the_flow_which_knows_the_aliases() {
    // P3: whether alias 9 is known is the flow's question (0x82 if not).
    let mut body = field(b"");
    body.extend(props(&[0x23, 0, 9]));
    let Packet::Publish(publish) = decode_ok(&frame(0x30, &body), Protocol::V5) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        (publish.topic.as_str(), publish.properties.topic_alias),
        ("", Some(9))
    );
}

#[test]
fn publish_topic_with_a_wildcard_is_an_invalid_topic_name() {
    // P4: `a/+/b`, `#`, `a/#` → 0x90, nothing routed.
    for protocol in ALL_VERSIONS {
        for name in [&b"a/+/b"[..], b"#", b"a/#"] {
            let error = decode_err(&publish_with_topic(name, protocol), protocol);
            // The inner TopicError belongs to the topic module.
            assert!(
                matches!(error, Error::Protocol(Violation::TopicName(_))),
                "{error:?}"
            );
            assert_eq!(error.reason_code(), Some(ReasonCode::TOPIC_NAME_INVALID));
        }
    }
}

#[test]
fn publish_with_qos_1_or_2_and_packet_identifier_0_is_malformed() {
    // P7
    for protocol in ALL_VERSIONS {
        for first in [0x32, 0x34] {
            let mut body = field(b"a/b");
            body.extend_from_slice(&[0, 0]);
            if protocol.is_v5() {
                body.push(0);
            }
            let bytes = frame(first, &body);
            assert_decode_error(&bytes, protocol, Malformed::ZeroPacketId, MALFORMED);
        }
    }
}

// §4.4 SUBSCRIBE / UNSUBSCRIBE

#[test]
fn subscribe_or_unsubscribe_with_zero_filters_is_a_protocol_error() {
    // S1: here with a user property, so the packet is not empty.
    let mut user = vec![0x26];
    user.extend(field(b"k"));
    user.extend(field(b"v"));
    for (first, name) in [(0x82, "SUBSCRIBE"), (0xA2, "UNSUBSCRIBE")] {
        let mut body = vec![0, 1];
        body.extend(props(&user));
        let expected = Violation::NoTopicFilters(name);
        assert_decode_error(&frame(first, &body), Protocol::V5, expected, PROTOCOL_ERROR);
        let expected = Violation::NoTopicFilters(name);
        assert_decode_error(
            &frame(first, &[0, 1]),
            Protocol::V3_1_1,
            expected,
            PROTOCOL_ERROR,
        );
    }
}

fn subscribe_filters(filters: &[&[u8]], protocol: Protocol) -> Vec<u8> {
    let mut body = vec![0, 1];
    if protocol.is_v5() {
        body.push(0);
    }
    for filter in filters {
        body.extend(field(filter));
        body.push(1);
    }
    frame(0x82, &body)
}

#[test]
fn invalid_topic_filters_are_kept_for_a_per_filter_refusal() {
    // S2, S3: `""`, `a/#/b`, `a#`, `a+/b`, `++`, `#/` next to a valid filter.
    // The codec keeps each filter as sent so the broker can answer each one
    // (0x8F in v5, 0x80 in v3) and still grant the others.
    let filters: [&[u8]; 7] = [b"ok/+", b"", b"a/#/b", b"a#", b"a+/b", b"++", b"#/"];
    for protocol in ALL_VERSIONS {
        let Packet::Subscribe(subscribe) =
            decode_ok(&subscribe_filters(&filters, protocol), protocol)
        else {
            panic!("not a SUBSCRIBE");
        };
        let decoded: Vec<&[u8]> = subscribe
            .filters
            .iter()
            .map(|f| f.filter.as_bytes().as_ref())
            .collect();
        assert_eq!(decoded, filters);
    }
}

#[test]
fn subscription_option_reserved_bits_are_malformed() {
    // S4: bits 6-7 set.
    for options in [0x41, 0x81, 0xC0] {
        let bytes = subscribe_with_options(options, Protocol::V5);
        let expected = Malformed::SubscriptionOptions(options);
        assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
    }
}

#[test]
fn v5_subscription_qos_3_or_retain_handling_3_is_a_protocol_error() {
    // S4: the catalogue says Malformed; 5.0 §3.8.3.1 says "It is a Protocol
    // Error" for both, and the spec wins.
    for options in [0x03, 0x30, 0x33] {
        let bytes = subscribe_with_options(options, Protocol::V5);
        let expected = Violation::SubscriptionOptions(options);
        assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn v311_subscription_qos_3_is_malformed() {
    // S4 (3.1.1 MQTT-3-8.3-4)
    let bytes = subscribe_with_options(0x03, Protocol::V3_1_1);
    assert_decode_error(&bytes, Protocol::V3_1_1, Malformed::InvalidQos, MALFORMED);
}

fn subscribe_with_properties(raw: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1];
    body.extend(props(raw));
    body.extend(field(b"a/b"));
    body.push(1);
    frame(0x82, &body)
}

#[test]
fn subscription_identifier_of_zero_or_twice_is_a_protocol_error() {
    // S7: value 0; two identifiers.
    let cases: [(&[u8], Violation); 2] = [
        (&[0x0B, 0x00], Violation::InvalidPropertyValue(0x0B)),
        (
            &[0x0B, 0x01, 0x0B, 0x02],
            Violation::DuplicateProperty(0x0B),
        ),
    ];
    for (raw, expected) in cases {
        let bytes = subscribe_with_properties(raw);
        assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn subscription_identifier_above_268435455_is_malformed() {
    // S7: such a value needs a fifth varint byte.
    let bytes = subscribe_with_properties(&[0x0B, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_decode_error(&bytes, Protocol::V5, Malformed::VarIntTooLong, MALFORMED);
}

// §4.5 Acknowledgements

#[test]
fn disconnect_with_a_reason_code_not_meant_for_disconnect_is_a_protocol_error() {
    // A7: 0x03 is no reason code at all (MQTT-3.14.2-1).
    let expected = Violation::DisconnectReason(0x03);
    assert_decode_error(
        &[0xE0, 0x02, 0x03, 0x00],
        Protocol::V5,
        expected,
        PROTOCOL_ERROR,
    );
}

// §4.6 Properties

/// A v5 QoS 0 PUBLISH to "a" with this raw property section (length
/// included) and payload "x".
fn publish_with_property_section(section: &[u8]) -> Vec<u8> {
    let mut body = field(b"a");
    body.extend_from_slice(section);
    body.push(b'x');
    frame(0x30, &body)
}

#[test]
fn property_not_allowed_in_the_packet_is_malformed() {
    // PR1: Topic Alias in CONNECT; Session Expiry Interval in PUBLISH.
    let connect = connect_with(Protocol::V5, 0x02, &[0x23, 0, 1], &field(b"c"));
    let expected = Malformed::PropertyNotAllowed {
        property: 0x23,
        packet: "CONNECT",
    };
    assert_decode_error(&connect, Protocol::V5, expected, MALFORMED);
    let publish = publish_with_property_section(&props(&[0x11, 0, 0, 0, 1]));
    let expected = Malformed::PropertyNotAllowed {
        property: 0x11,
        packet: "PUBLISH",
    };
    assert_decode_error(&publish, Protocol::V5, expected, MALFORMED);
}

#[test]
fn single_instance_property_twice_is_a_protocol_error() {
    // PR2: Message Expiry Interval, Content Type, Topic Alias and
    // Correlation Data, each twice in a PUBLISH.
    let cases: [&[u8]; 4] = [
        &[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1],
        &[0x03, 0, 1, b't', 0x03, 0, 1, b't'],
        &[0x23, 0, 1, 0x23, 0, 2],
        &[0x09, 0, 0, 0x09, 0, 0],
    ];
    for raw in cases {
        let bytes = publish_with_property_section(&props(raw));
        let expected = Violation::DuplicateProperty(raw[0]);
        assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn property_length_beyond_the_packet_or_of_five_bytes_is_malformed() {
    // PR3
    let beyond = publish_with_property_section(&[0x09, 0x23, 0, 1]);
    assert_decode_error(
        &beyond,
        Protocol::V5,
        Malformed::Truncated("properties"),
        MALFORMED,
    );
    let five_bytes = publish_with_property_section(&[0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_decode_error(
        &five_bytes,
        Protocol::V5,
        Malformed::VarIntTooLong,
        MALFORMED,
    );
}

#[test]
fn user_property_cut_short_is_malformed() {
    // PR4: the value's length says 5, 1 byte follows.
    let raw = [0x26, 0, 1, b'k', 0, 5, b'v'];
    let bytes = publish_with_property_section(&props(&raw));
    assert_decode_error(
        &bytes,
        Protocol::V5,
        Malformed::Truncated("user property"),
        MALFORMED,
    );
}

#[test]
fn correlation_data_longer_than_the_packet_is_malformed() {
    // PR5: length 65,535 in a 40-byte packet.
    let mut raw = vec![0x09, 0xFF, 0xFF];
    raw.extend_from_slice(&[0xAB; 30]);
    let bytes = publish_with_property_section(&props(&raw));
    assert_eq!(bytes.len(), 40);
    let expected = Malformed::Truncated("correlation data");
    assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
}

#[test]
fn unknown_property_identifiers_are_malformed() {
    // PR6: 0x00, 0x7F, and 128 as a two-byte varint.
    let cases: [(&[u8], u32); 3] = [(&[0x00, 0], 0), (&[0x7F, 0], 0x7F), (&[0x80, 0x01, 0], 128)];
    for (raw, id) in cases {
        let bytes = publish_with_property_section(&props(raw));
        assert_decode_error(
            &bytes,
            Protocol::V5,
            Malformed::UnknownProperty(id),
            MALFORMED,
        );
    }
}

#[test]
fn response_topic_with_a_wildcard_is_a_protocol_error() {
    // PR7 (MQTT-3.3.2-14)
    let mut raw = vec![0x08];
    raw.extend(field(b"a/+"));
    let bytes = publish_with_property_section(&props(&raw));
    let expected = Violation::InvalidPropertyValue(0x08);
    assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
}

#[test]
fn content_type_that_is_not_utf8_is_malformed() {
    // PR7: a lone continuation byte.
    let mut raw = vec![0x03];
    raw.extend(field(b"text/\x80"));
    let bytes = publish_with_property_section(&props(&raw));
    let expected = bad_string("content type", StringError::InvalidUtf8);
    assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
}

#[test]
fn server_only_properties_in_connect_are_malformed() {
    // PR8: Assigned Client Identifier, Server Keep Alive.
    let mut assigned = vec![0x12];
    assigned.extend(field(b"id"));
    for raw in [&assigned[..], &[0x13, 0, 30]] {
        let bytes = connect_with(Protocol::V5, 0x02, raw, &field(b"c"));
        let expected = Malformed::PropertyNotAllowed {
            property: raw[0],
            packet: "CONNECT",
        };
        assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
    }
}

// §4.7 UTF-8 strings

/// Packets carrying `bad` in each kind of string field, with the field
/// name the error must report.
fn string_fields(bad: &[u8]) -> Vec<(Vec<u8>, Protocol, &'static str)> {
    let mut cases = Vec::new();
    for protocol in [Protocol::V3_1_1, Protocol::V5] {
        cases.push((publish_with_topic(bad, protocol), protocol, "topic name"));
        cases.push((
            connect_with(protocol, 0x02, &[], &field(bad)),
            protocol,
            "client identifier",
        ));
        let mut with_user = field(b"c");
        with_user.extend(field(bad));
        cases.push((
            connect_with(protocol, 0x82, &[], &with_user),
            protocol,
            "user name",
        ));
        let mut with_will = field(b"c");
        if protocol.is_v5() {
            with_will.push(0);
        }
        with_will.extend(field(bad));
        with_will.extend(field(b"gone"));
        cases.push((
            connect_with(protocol, 0x06, &[], &with_will),
            protocol,
            "will topic",
        ));
    }
    let mut reason = vec![0x1F];
    reason.extend(field(bad));
    let mut puback = vec![0x00, 0x01, 0x80];
    puback.extend(props(&reason));
    cases.push((frame(0x40, &puback), Protocol::V5, "reason string"));
    cases
}

fn assert_bad_in_every_string_field(bad: &[u8], error: StringError) {
    for (bytes, protocol, field) in string_fields(bad) {
        assert_decode_error(&bytes, protocol, bad_string(field, error), MALFORMED);
    }
}

#[test]
fn overlong_utf8_forms_are_malformed() {
    // U1: `C0 AF`, `E0 80 AF`.
    for bad in [&b"a\xC0\xAF"[..], b"\xE0\x80\xAF"] {
        assert_bad_in_every_string_field(bad, StringError::InvalidUtf8);
    }
}

#[test]
fn encoded_surrogates_are_malformed() {
    // U2: `ED A0 80` (MQTT-1.5.4-1).
    assert_bad_in_every_string_field(b"\xED\xA0\x80", StringError::InvalidUtf8);
}

#[test]
fn null_character_inside_a_string_is_malformed() {
    // U3 (MQTT-1.5.4-2)
    assert_bad_in_every_string_field(b"a\x00b", StringError::NullCharacter);
}

#[test]
fn truncated_utf8_sequence_at_the_end_of_a_string_is_malformed() {
    // U4: `E2 82` (the start of €).
    assert_bad_in_every_string_field(b"price \xE2\x82", StringError::InvalidUtf8);
}

#[test]
fn code_points_above_u10ffff_and_bytes_f5_to_ff_are_malformed() {
    // U5
    assert_bad_in_every_string_field(b"\xF4\x90\x80\x80", StringError::InvalidUtf8);
    for byte in 0xF5..=0xFF {
        assert_bad_in_every_string_field(&[b'a', byte], StringError::InvalidUtf8);
    }
}

#[test]
fn leading_byte_order_mark_is_kept_and_makes_a_distinct_topic() {
    // U6 (MQTT-1.5.4-3)
    for protocol in ALL_VERSIONS {
        let topic_of = |raw: &[u8]| match decode_ok(&publish_with_topic(raw, protocol), protocol) {
            Packet::Publish(publish) => publish.topic,
            other => panic!("not a PUBLISH: {other:?}"),
        };
        let with_bom = topic_of(b"\xEF\xBB\xBFa/b");
        assert_eq!(with_bom.as_str(), "\u{FEFF}a/b");
        assert_ne!(with_bom, topic_of(b"a/b"));
    }
}
