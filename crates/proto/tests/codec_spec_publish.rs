//! MQTT 5.0 and 3.1.1 §3.3 PUBLISH and §3.4–3.7 its acknowledgements, as
//! the codec enforces them.
//! Conventions as in `codec_spec_format.rs`.

mod common;

use bytes::BytesMut;
use common::*;
use pigeon_proto::codec::{Ack, Publish};
use pigeon_proto::error::{Malformed, Misuse, Violation};
use pigeon_proto::string::StringError;
use pigeon_proto::{Error, Packet, PacketType, Protocol, ReasonCode};

// §3.3 PUBLISH

#[test]
fn publish_must_not_have_both_qos_bits_set() {
    // MQTT-3.3.1-4 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let mut bytes = publish_with_topic(b"a/b", protocol);
        bytes[0] |= 0b0110;
        assert_decode_error(&bytes, protocol, Malformed::InvalidQos, MALFORMED);
    }
}

#[test]
fn dup_flag_must_be_zero_on_a_qos_0_publish() {
    // MQTT-3.3.1-2 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let mut bytes = publish_with_topic(b"a/b", protocol);
        bytes[0] |= 0b1000;
        assert_decode_error(&bytes, protocol, Malformed::DupOnQos0, MALFORMED);
    }
}

#[test]
fn encoding_dup_on_a_qos_0_publish_is_refused() {
    // MQTT-3.3.1-2 (5.0 and 3.1.1)
    let mut publish = Publish::new(topic("a/b"), "x");
    publish.dup = true;
    let error = Packet::Publish(publish)
        .encode(Protocol::V3_1_1, &mut BytesMut::new())
        .unwrap_err();
    assert!(
        matches!(error, Error::Misuse(Misuse::InvalidValue(_))),
        "{error:?}"
    );
}

#[test]
fn topic_name_must_be_present_as_the_first_field() {
    // MQTT-3.3.2-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let expected = Malformed::Truncated("topic name");
        assert_decode_error(&[0x30, 0x00], protocol, expected, MALFORMED);
    }
}

#[test]
fn topic_name_must_be_a_utf8_string() {
    // MQTT-3.3.2-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = publish_with_topic(b"a/\xFF", protocol);
        let expected = bad_string("topic name", StringError::InvalidUtf8);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn topic_name_must_not_contain_wildcard_characters() {
    // MQTT-3.3.2-2 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let error = decode_err(&publish_with_topic(b"a/+", protocol), protocol);
        assert!(
            matches!(error, Error::Protocol(Violation::TopicName(_))),
            "{error:?}"
        );
        assert_eq!(error.reason_code(), Some(ReasonCode::TOPIC_NAME_INVALID));
    }
}

/// A v5 QoS 0 PUBLISH to "a" with these raw properties and payload "x".
fn v5_publish_with_properties(raw: &[u8]) -> Vec<u8> {
    let mut body = field(b"a");
    body.extend(props(raw));
    body.push(b'x');
    frame(0x30, &body)
}

#[test]
fn v5_response_topic_must_be_a_utf8_string() {
    // MQTT-3.3.2-13
    let mut raw = vec![0x08];
    raw.extend(field(b"re\xFFply"));
    let expected = bad_string("response topic", StringError::InvalidUtf8);
    assert_decode_error(
        &v5_publish_with_properties(&raw),
        Protocol::V5,
        expected,
        MALFORMED,
    );
}

#[test]
fn v5_response_topic_must_not_contain_wildcard_characters() {
    // MQTT-3.3.2-14
    let mut raw = vec![0x08];
    raw.extend(field(b"reply/#"));
    let expected = Violation::InvalidPropertyValue(0x08);
    let bytes = v5_publish_with_properties(&raw);
    assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
}

#[test]
fn v5_content_type_must_be_a_utf8_string() {
    // MQTT-3.3.2-19
    let mut raw = vec![0x03];
    raw.extend(field(b"text/\x00plain"));
    let expected = bad_string("content type", StringError::NullCharacter);
    assert_decode_error(
        &v5_publish_with_properties(&raw),
        Protocol::V5,
        expected,
        MALFORMED,
    );
}

#[test]
fn v5_user_properties_keep_their_order_and_repeats() {
    // MQTT-3.3.2-17, MQTT-3.3.2-18: what is decoded is re-encoded as it came.
    let mut raw = Vec::new();
    for (key, value) in [("k", "2"), ("a", "x"), ("k", "1"), ("k", "2")] {
        raw.push(0x26);
        raw.extend(field(key.as_bytes()));
        raw.extend(field(value.as_bytes()));
    }
    let bytes = v5_publish_with_properties(&raw);
    let packet = decode_ok(&bytes, Protocol::V5);
    let Packet::Publish(publish) = &packet else {
        panic!("not a PUBLISH")
    };
    let pairs: Vec<_> = publish
        .properties
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(pairs, [("k", "2"), ("a", "x"), ("k", "1"), ("k", "2")]);
    assert_eq!(&encode(&packet, Protocol::V5)[..], &bytes[..]);
}

#[test]
fn v5_empty_topic_name_with_a_topic_alias_is_left_for_the_flow_to_resolve() {
    // §3.3.2.3.4 (5.0): the topic comes from the alias mapping, which the
    // connection's flow holds.
    let mut body = field(b"");
    body.extend(props(&[0x23, 0, 3]));
    let Packet::Publish(publish) = decode_ok(&frame(0x30, &body), Protocol::V5) else {
        panic!("not a PUBLISH");
    };
    assert!(publish.topic.is_empty());
    assert_eq!(publish.properties.topic_alias, Some(3));
}

#[test]
fn publish_payload_may_be_empty() {
    // §3.3.3 (5.0 and 3.1.1): "It is valid for a PUBLISH packet to contain
    // a zero length payload."
    for protocol in ALL_VERSIONS {
        let mut body = field(b"a/b");
        body.extend_from_slice(&[0, 7]);
        if protocol.is_v5() {
            body.push(0);
        }
        let Packet::Publish(publish) = decode_ok(&frame(0x33, &body), protocol) else {
            panic!("not a PUBLISH");
        };
        assert!(publish.payload.is_empty() && publish.retain);
    }
}

#[test]
fn v5_subscription_identifier_of_zero_is_a_protocol_error() {
    // §3.3.2.3.8 (5.0)
    let bytes = v5_publish_with_properties(&[0x0B, 0x00]);
    let expected = Violation::InvalidPropertyValue(0x0B);
    assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
}

#[test]
fn v5_subscription_identifier_above_268435455_cannot_be_encoded() {
    // §3.3.2.3.8 (5.0): "from 1 to 268,435,455". A larger value needs five
    // bytes, which would also break the length written before it.
    let mut publish = Publish::new(topic("a"), "x");
    publish.properties.subscription_identifiers = vec![268_435_456];
    let mut buf = BytesMut::new();
    let error = publish.encode_header(Protocol::V5, &mut buf).unwrap_err();
    assert!(
        matches!(error, Error::Misuse(Misuse::InvalidValue(_))),
        "{error:?}"
    );
    let error = Packet::Publish(publish)
        .encode(Protocol::V5, &mut buf)
        .unwrap_err();
    assert!(
        matches!(error, Error::Misuse(Misuse::InvalidValue(_))),
        "{error:?}"
    );
    assert!(buf.is_empty());
}

// §3.4–3.7 PUBACK, PUBREC, PUBREL, PUBCOMP

#[test]
fn v5_puback_without_a_reason_code_means_success() {
    // §3.4.2.1 (5.0): "If the Remaining Length is 2, then there is no
    // Reason Code and the value of 0x00 (Success) is used."
    let packet = decode_ok(&[0x40, 0x02, 0x00, 0x01], Protocol::V5);
    assert_eq!(packet, Packet::PubAck(Ack::new(id(1))));
    assert_eq!(
        &encode(&packet, Protocol::V5)[..],
        &[0x40, 0x02, 0x00, 0x01]
    );
}

#[test]
fn v5_puback_with_a_reason_code_and_no_properties_omits_the_property_length() {
    // §3.4.2.2.1 (5.0): "If the Remaining Length is less than 4 there is no
    // Property Length and the value of 0 is used."
    let bytes = [0x40, 0x03, 0x00, 0x01, 0x10];
    let packet = decode_ok(&bytes, Protocol::V5);
    let expected = Ack::with_code(id(1), ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(packet, Packet::PubAck(expected));
    assert_eq!(&encode(&packet, Protocol::V5)[..], &bytes);
}

fn assert_ack_code_refused(first: u8, code: u8, packet: &'static str) {
    let expected = Malformed::InvalidReasonCode { code, packet };
    assert_decode_error(
        &[first, 0x03, 0x00, 0x01, code],
        Protocol::V5,
        expected,
        MALFORMED,
    );
}

#[test]
fn v5_puback_must_use_a_puback_reason_code() {
    // MQTT-3.4.2-1
    assert_ack_code_refused(0x40, 0x92, "PUBACK");
}

#[test]
fn v5_pubrec_must_use_a_pubrec_reason_code() {
    // MQTT-3.5.2-1
    assert_ack_code_refused(0x50, 0x92, "PUBREC");
}

#[test]
fn v5_pubrel_must_use_a_pubrel_reason_code() {
    // MQTT-3.6.2-1
    assert_ack_code_refused(0x62, 0x10, "PUBREL");
}

#[test]
fn v5_pubcomp_must_use_a_pubcomp_reason_code() {
    // MQTT-3.7.2-1
    assert_ack_code_refused(0x70, 0x80, "PUBCOMP");
}

#[test]
fn pubrel_fixed_header_flags_must_be_0010() {
    // MQTT-3.6.1-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let expected = Packet::PubRel(Ack::new(id(1)));
        assert_eq!(decode_ok(&[0x62, 0x02, 0x00, 0x01], protocol), expected);
        let error = flags_error(PacketType::PubRel, 0);
        assert_decode_error(&[0x60, 0x02, 0x00, 0x01], protocol, error, MALFORMED);
    }
}

#[test]
fn v311_acknowledgement_holds_only_the_packet_identifier() {
    // §3.4.2 (3.1.1): PUBACK, PUBREC, PUBREL and PUBCOMP have a remaining
    // length of 2.
    for first in [0x40, 0x50, 0x62, 0x70] {
        let bytes = [first, 0x03, 0x00, 0x01, 0x00];
        assert_decode_error(
            &bytes,
            Protocol::V3_1_1,
            Malformed::TrailingBytes(1),
            MALFORMED,
        );
    }
}
