//! MQTT 5.0 and 3.1.1 sections 1 and 2 (data representation, control
//! packet format) and the packets that are little more than a fixed header
//! (§3.12–3.15), as the codec enforces them.
//!
//! One behaviour per test, named after the sentence of the spec, with its
//! normative id in a comment. Where an id means different things in the
//! two versions, the comment says which version's id it is; tests that
//! hold for one version only carry `v5` or `v311` in their name. Rules about
//! the conversation (which packet may come when, identifiers in use, topic
//! aliases) are the flow's and are not tested here.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use pigeon_proto::codec::{Disconnect, Publish, Subscribe, SubscribeFilter, SubscriptionOptions};
use pigeon_proto::error::{Malformed, Misuse, Violation};
use pigeon_proto::string::StringError;
use pigeon_proto::{Error, Packet, PacketType, Protocol, QoS, ReasonCode};

// §1.5 Data representation

#[test]
fn utf8_string_must_not_encode_a_surrogate_code_point() {
    // MQTT-1.5.4-1 (5.0), MQTT-1.5.3-1 (3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = publish_with_topic(b"a/\xED\xA0\x80", protocol);
        let expected = bad_string("topic name", StringError::InvalidUtf8);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn utf8_string_must_not_include_the_null_character() {
    // MQTT-1.5.4-2 (5.0), MQTT-1.5.3-2 (3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x02, &[], &field(b"a\0b"));
        let expected = bad_string("client identifier", StringError::NullCharacter);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn byte_order_mark_is_not_stripped_by_the_receiver() {
    // MQTT-1.5.4-3 (5.0), MQTT-1.5.3-3 (3.1.1)
    for protocol in ALL_VERSIONS {
        let Packet::Publish(publish) =
            decode_ok(&publish_with_topic(b"\xEF\xBB\xBFa/b", protocol), protocol)
        else {
            panic!("not a PUBLISH");
        };
        assert_eq!(publish.topic.as_str(), "\u{FEFF}a/b");
    }
}

#[test]
fn v5_variable_byte_integer_must_use_the_minimum_number_of_bytes() {
    // MQTT-1.5.5-1: a property length of 0 written in two bytes.
    let bytes = frame(0x30, &[0, 1, b'a', 0x80, 0x00, b'x']);
    assert_decode_error(&bytes, Protocol::V5, Malformed::VarIntNotMinimal, MALFORMED);
}

#[test]
fn remaining_length_is_encoded_in_the_fewest_bytes_of_the_spec_table() {
    // MQTT-1.5.5-1: the boundaries of the table in §1.5.5.
    let cases = [
        (127, 1),
        (128, 2),
        (16_383, 2),
        (16_384, 3),
        (2_097_151, 3),
        (2_097_152, 4),
    ];
    for (remaining, length_bytes) in cases {
        // A v3.1.1 QoS 0 PUBLISH to "t" has 3 bytes before its payload.
        let payload = Bytes::from(vec![0u8; remaining - 3]);
        let packet = Packet::Publish(Publish::new(topic("t"), payload));
        let bytes = encode(&packet, Protocol::V3_1_1);
        assert_eq!(
            bytes.len(),
            1 + length_bytes + remaining,
            "remaining {remaining}"
        );
        assert_eq!(packet.encoded_len(Protocol::V3_1_1), bytes.len());
        assert_eq!(decode_ok(&bytes, Protocol::V3_1_1), packet);
    }
}

#[test]
fn v5_user_property_must_be_a_pair_of_utf8_strings() {
    // MQTT-1.5.7-1: the value of the pair is not UTF-8.
    let mut raw = vec![0x26];
    raw.extend(field(b"k"));
    raw.extend(field(b"\xFF"));
    let mut body = field(b"a");
    body.extend(props(&raw));
    let bytes = frame(0x30, &body);
    let expected = bad_string("user property", StringError::InvalidUtf8);
    assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
}

// §2 MQTT Control Packet format

#[test]
fn v5_reserved_fixed_header_flags_must_be_set_to_the_listed_value() {
    // MQTT-2.1.3-1: checked on the first byte, before the length arrives.
    for raw_type in (1..=15u8).filter(|&t| t != 3) {
        let kind = PacketType::from_u8(raw_type).expect("known type");
        for flags in (0..=15u8).filter(|&f| f != kind.required_flags()) {
            let bytes = [raw_type << 4 | flags];
            let expected = flags_error(kind, flags);
            assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
        }
    }
}

#[test]
fn v311_invalid_fixed_header_flags_close_the_connection() {
    // MQTT-2.2.2-1, MQTT-2.2.2-2 (3.1.1)
    for raw_type in (1..=14u8).filter(|&t| t != 3) {
        let kind = PacketType::from_u8(raw_type).expect("known type");
        for flags in (0..=15u8).filter(|&f| f != kind.required_flags()) {
            let error = decode_err(&[raw_type << 4 | flags], Protocol::V3_1_1);
            assert_eq!(error, flags_error(kind, flags).into());
        }
    }
}

#[test]
fn publish_with_qos_0_has_no_packet_identifier() {
    // MQTT-2.2.1-2 (5.0), MQTT-2.3.1-5 (3.1.1): what follows the topic is
    // payload, not an identifier.
    let bytes = frame(0x30, &[0, 3, b'a', b'/', b'b', 0x00, 0x0A]);
    let Packet::Publish(publish) = decode_ok(&bytes, Protocol::V3_1_1) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(publish.packet_id, None);
    assert_eq!(&publish.payload[..], &[0x00, 0x0A]);
}

#[test]
fn encoding_a_qos_0_publish_with_a_packet_identifier_is_refused() {
    // MQTT-2.2.1-2 (5.0), MQTT-2.3.1-5 (3.1.1)
    let mut publish = Publish::new(topic("a/b"), "x");
    publish.packet_id = Some(id(10));
    let mut buf = BytesMut::new();
    let error = Packet::Publish(publish)
        .encode(Protocol::V5, &mut buf)
        .unwrap_err();
    assert_eq!(error, Error::Misuse(Misuse::PacketIdMismatch));
    assert_eq!(error.reason_code(), None);
    assert!(buf.is_empty());
}

#[test]
fn subscribe_and_unsubscribe_must_carry_a_non_zero_packet_identifier() {
    // MQTT-2.2.1-3 (5.0), MQTT-2.3.1-1 (3.1.1)
    for protocol in ALL_VERSIONS {
        let props = if protocol.is_v5() { &[0u8][..] } else { &[] };
        let mut subscribe = vec![0, 0];
        subscribe.extend_from_slice(props);
        subscribe.extend(field(b"a"));
        subscribe.push(1);
        let mut unsubscribe = vec![0, 0];
        unsubscribe.extend_from_slice(props);
        unsubscribe.extend(field(b"a"));
        for bytes in [frame(0x82, &subscribe), frame(0xA2, &unsubscribe)] {
            assert_decode_error(&bytes, protocol, Malformed::ZeroPacketId, MALFORMED);
        }
    }
}

#[test]
fn v311_publish_variable_header_example_of_the_spec_round_trips() {
    // §3.3.2.3, Figure 3.11 (3.1.1): topic "a/b", packet identifier 10.
    let bytes = [0x32, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A];
    let Packet::Publish(publish) = decode_ok(&bytes, Protocol::V3_1_1) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(
        (publish.topic.as_str(), publish.packet_id),
        ("a/b", Some(id(10)))
    );
    assert_eq!(publish.qos, QoS::AtLeastOnce);
    assert_eq!(
        &encode(&Packet::Publish(publish), Protocol::V3_1_1)[..],
        &bytes
    );
}

#[test]
fn v5_publish_variable_header_example_of_the_spec_round_trips() {
    // §3.3.2.3, Figure 3-9 (5.0): topic "a/b", packet identifier 10, no
    // properties.
    let bytes = [0x32, 0x08, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0A, 0x00];
    let packet = decode_ok(&bytes, Protocol::V5);
    let Packet::Publish(publish) = &packet else {
        panic!("not a PUBLISH")
    };
    assert_eq!(
        (publish.topic.as_str(), publish.packet_id),
        ("a/b", Some(id(10)))
    );
    assert!(publish.properties.is_empty() && publish.payload.is_empty());
    assert_eq!(&encode(&packet, Protocol::V5)[..], &bytes);
}

#[test]
fn v5_no_properties_is_sent_as_a_property_length_of_zero() {
    // MQTT-2.2.2-1
    let mut subscribe = Subscribe {
        packet_id: id(1),
        properties: Default::default(),
        filters: vec![SubscribeFilter {
            filter: s("a/b"),
            options: SubscriptionOptions::default(),
        }],
    };
    subscribe.filters[0].options.qos = QoS::AtLeastOnce;
    let bytes = encode(&Packet::Subscribe(subscribe), Protocol::V5);
    assert_eq!(
        &bytes[..],
        &[0x82, 0x09, 0, 1, 0x00, 0, 3, b'a', b'/', b'b', 0x01]
    );
}

#[test]
fn v5_publish_without_its_property_length_is_malformed() {
    // MQTT-2.2.2-1: the property length is not optional in PUBLISH.
    let bytes = frame(0x30, &field(b"a/b"));
    let expected = Malformed::Truncated("property length");
    assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
}

// §3.12, §3.13 PINGREQ, PINGRESP

#[test]
fn pingreq_and_pingresp_are_two_bytes_with_no_body() {
    // §3.12, §3.13 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        for (bytes, packet) in [
            ([0xC0, 0x00], Packet::PingReq),
            ([0xD0, 0x00], Packet::PingResp),
        ] {
            assert_eq!(decode_ok(&bytes, protocol), packet);
            assert_eq!(&encode(&packet, protocol)[..], &bytes);
        }
    }
}

// §3.14 DISCONNECT

#[test]
fn disconnect_reserved_flags_must_be_zero() {
    // MQTT-3.14.1-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let error = flags_error(PacketType::Disconnect, 0b0001);
        assert_decode_error(&[0xE1, 0x00], protocol, error, MALFORMED);
    }
}

#[test]
fn v5_disconnect_must_use_a_disconnect_reason_code() {
    // MQTT-3.14.2-1: 0x10 belongs to PUBACK.
    let expected = Violation::DisconnectReason(0x10);
    assert_decode_error(&[0xE0, 0x01, 0x10], Protocol::V5, expected, PROTOCOL_ERROR);
}

#[test]
fn v5_disconnect_with_remaining_length_0_is_a_normal_disconnection() {
    // §3.14.2.1 (5.0): "If the Remaining Length is less than 1 the value of
    // 0x00 (Normal disconnection) is used."
    let packet = decode_ok(&[0xE0, 0x00], Protocol::V5);
    let expected = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
    assert_eq!(packet, Packet::Disconnect(expected));
    assert_eq!(&encode(&packet, Protocol::V5)[..], &[0xE0, 0x00]);
}

#[test]
fn v5_disconnect_reason_code_without_property_length_means_no_properties() {
    // §3.14.2.2.1 (5.0): "If the Remaining Length is less than 2, a value of
    // 0 is used."
    let packet = decode_ok(&[0xE0, 0x01, 0x04], Protocol::V5);
    let expected = Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL);
    assert_eq!(packet, Packet::Disconnect(expected));
}

#[test]
fn v311_disconnect_has_no_variable_header_or_payload() {
    // §3.14 (3.1.1)
    assert_eq!(
        decode_ok(&[0xE0, 0x00], Protocol::V3_1_1),
        Packet::Disconnect(Disconnect::default())
    );
    let bytes = [0xE0, 0x01, 0x00];
    assert_decode_error(
        &bytes,
        Protocol::V3_1_1,
        Malformed::TrailingBytes(1),
        MALFORMED,
    );
}

// §3.15 AUTH

#[test]
fn v5_auth_reserved_flags_must_be_zero() {
    // MQTT-3.15.1-1
    let error = flags_error(PacketType::Auth, 0b0100);
    assert_decode_error(&[0xF4, 0x00], Protocol::V5, error, MALFORMED);
}

#[test]
fn v5_auth_must_use_an_authenticate_reason_code() {
    // MQTT-3.15.2-1
    for code in [0x00, 0x18, 0x19] {
        let Packet::Auth(auth) = decode_ok(&[0xF0, 0x02, code, 0x00], Protocol::V5) else {
            panic!("not an AUTH");
        };
        assert_eq!(auth.reason_code.value(), code);
    }
    let expected = Malformed::InvalidReasonCode {
        code: 0x04,
        packet: "AUTH",
    };
    assert_decode_error(&[0xF0, 0x02, 0x04, 0x00], Protocol::V5, expected, MALFORMED);
}

#[test]
fn v311_packet_type_15_is_reserved() {
    // §2.2.1 (3.1.1): type 15 is "Reserved"; AUTH exists only in 5.0.
    for protocol in V3_VERSIONS {
        let expected = Malformed::ReservedPacketType(15);
        assert_decode_error(&[0xF0, 0x00], protocol, expected, MALFORMED);
    }
}

#[test]
fn v311_encoding_auth_is_refused() {
    // §2.2.1 (3.1.1): there is no AUTH to send.
    let auth = Packet::Auth(Disconnect::new(ReasonCode::CONTINUE_AUTHENTICATION));
    let error = auth
        .encode(Protocol::V3_1_1, &mut BytesMut::new())
        .unwrap_err();
    assert!(
        matches!(error, Error::Misuse(Misuse::InvalidValue(_))),
        "{error:?}"
    );
}
