//! MQTT 5.0 and 3.1.1 §3.8–3.11 SUBSCRIBE, SUBACK, UNSUBSCRIBE and
//! UNSUBACK, as the codec enforces them.
//! Conventions as in `codec_spec_format.rs`.

mod common;

use common::*;
use pigeon_proto::codec::{RetainHandling, SubAck, Unsubscribe};
use pigeon_proto::error::{Malformed, Violation};
use pigeon_proto::string::StringError;
use pigeon_proto::{Packet, PacketType, Protocol, QoS, ReasonCode};

// §3.8 SUBSCRIBE

#[test]
fn subscribe_fixed_header_flags_must_be_0010() {
    // MQTT-3.8.1-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let error = flags_error(PacketType::Subscribe, 0b0011);
        assert_decode_error(&[0x83], protocol, error, MALFORMED);
    }
}

#[test]
fn v311_subscribe_payload_example_of_the_spec_decodes() {
    // §3.8.3.1, Figure 3.23 (3.1.1): "a/b" at QoS 1, "c/d" at QoS 2; the
    // packet identifier 10 is the one of Figure 3.21.
    let bytes = [
        0x82, 0x0E, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x01, 0x00, 0x03, b'c', b'/', b'd',
        0x02,
    ];
    let Packet::Subscribe(subscribe) = decode_ok(&bytes, Protocol::V3_1_1) else {
        panic!("not a SUBSCRIBE");
    };
    let filters: Vec<_> = subscribe
        .filters
        .iter()
        .map(|f| (f.filter.as_str(), f.options.qos))
        .collect();
    assert_eq!(
        filters,
        [("a/b", QoS::AtLeastOnce), ("c/d", QoS::ExactlyOnce)]
    );
    assert_eq!(subscribe.packet_id, id(10));
}

#[test]
fn subscribe_topic_filters_must_be_utf8_strings() {
    // MQTT-3.8.3-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let mut body = vec![0, 1];
        if protocol.is_v5() {
            body.push(0);
        }
        body.extend(field(b"a/\xF5"));
        body.push(0);
        let expected = bad_string("topic filter", StringError::InvalidUtf8);
        assert_decode_error(&frame(0x82, &body), protocol, expected, MALFORMED);
    }
}

#[test]
fn subscribe_must_contain_at_least_one_topic_filter() {
    // MQTT-3.8.3-2 (5.0), MQTT-3.8.3-3 (3.1.1)
    for protocol in ALL_VERSIONS {
        let body: &[u8] = if protocol.is_v5() {
            &[0, 1, 0]
        } else {
            &[0, 1]
        };
        let expected = Violation::NoTopicFilters("SUBSCRIBE");
        assert_decode_error(&frame(0x82, body), protocol, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn v5_subscription_options_reserved_bits_must_be_zero() {
    // MQTT-3.8.3-5
    for options in [0x40, 0x80, 0xC1] {
        let bytes = subscribe_with_options(options, Protocol::V5);
        let expected = Malformed::SubscriptionOptions(options);
        assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
    }
}

#[test]
fn v5_subscription_maximum_qos_3_is_a_protocol_error() {
    // §3.8.3.1 (5.0): "It is a Protocol Error if the Maximum QoS field has
    // the value 3."
    let bytes = subscribe_with_options(0x03, Protocol::V5);
    let expected = Violation::SubscriptionOptions(0x03);
    assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
}

#[test]
fn v5_retain_handling_3_is_a_protocol_error() {
    // §3.8.3.1 (5.0): "It is a Protocol Error to send a Retain Handling
    // value of 3."
    let bytes = subscribe_with_options(0x31, Protocol::V5);
    let expected = Violation::SubscriptionOptions(0x31);
    assert_decode_error(&bytes, Protocol::V5, expected, PROTOCOL_ERROR);
}

#[test]
fn v5_subscription_options_are_decoded_bit_by_bit() {
    // §3.8.3.1 (5.0): QoS in bits 0-1, No Local bit 2, Retain As Published
    // bit 3, Retain Handling bits 4-5.
    let Packet::Subscribe(subscribe) =
        decode_ok(&subscribe_with_options(0x2E, Protocol::V5), Protocol::V5)
    else {
        panic!("not a SUBSCRIBE");
    };
    let options = subscribe.filters[0].options;
    assert_eq!(options.qos, QoS::ExactlyOnce);
    assert!(options.no_local && options.retain_as_published);
    assert_eq!(options.retain_handling, RetainHandling::DoNotSend);
}

#[test]
fn v311_requested_qos_upper_six_bits_are_reserved() {
    // MQTT-3-8.3-4 (3.1.1; printed with a dash in the spec): the v5 option
    // bits are reserved in 3.1.1.
    for options in [0x04, 0x08, 0x10, 0x80] {
        let bytes = subscribe_with_options(options | 0x01, Protocol::V3_1_1);
        let expected = Malformed::SubscriptionOptions(options | 0x01);
        assert_decode_error(&bytes, Protocol::V3_1_1, expected, MALFORMED);
    }
}

#[test]
fn v311_requested_qos_3_is_malformed() {
    // MQTT-3-8.3-4 (3.1.1)
    let bytes = subscribe_with_options(0x03, Protocol::V3_1_1);
    assert_decode_error(&bytes, Protocol::V3_1_1, Malformed::InvalidQos, MALFORMED);
}

// §3.9 SUBACK

#[test]
fn v311_suback_payload_example_of_the_spec_decodes() {
    // §3.9.3.1, Figure 3.27 (3.1.1): QoS 0, QoS 2, failure.
    let bytes = [0x90, 0x05, 0x00, 0x0A, 0x00, 0x02, 0x80];
    let packet = decode_ok(&bytes, Protocol::V3_1_1);
    let Packet::SubAck(suback) = &packet else {
        panic!("not a SUBACK")
    };
    let codes = [
        ReasonCode::GRANTED_QOS_0,
        ReasonCode::GRANTED_QOS_2,
        ReasonCode::UNSPECIFIED_ERROR,
    ];
    assert_eq!(suback.reason_codes, codes);
    assert_eq!(&encode(&packet, Protocol::V3_1_1)[..], &bytes);
}

#[test]
fn v311_suback_return_codes_other_than_0_1_2_and_0x80_are_reserved() {
    // MQTT-3.9.3-2 (3.1.1)
    for code in [0x03, 0x8F, 0xFF] {
        let expected = Malformed::InvalidReasonCode {
            code,
            packet: "SUBACK",
        };
        let bytes = [0x90, 0x03, 0x00, 0x0A, code];
        assert_decode_error(&bytes, Protocol::V3_1_1, expected, MALFORMED);
    }
}

#[test]
fn v311_suback_failures_are_sent_as_0x80() {
    // MQTT-3.9.3-2 (3.1.1): v5 failure codes become the one 3.1.1 failure.
    let suback = SubAck {
        packet_id: id(10),
        properties: Default::default(),
        reason_codes: vec![
            ReasonCode::GRANTED_QOS_1,
            ReasonCode::TOPIC_FILTER_INVALID,
            ReasonCode::NOT_AUTHORIZED,
        ],
    };
    let bytes = encode(&Packet::SubAck(suback), Protocol::V3_1_1);
    assert_eq!(&bytes[..], &[0x90, 0x05, 0x00, 0x0A, 0x01, 0x80, 0x80]);
}

#[test]
fn v5_suback_must_use_a_subscribe_reason_code() {
    // MQTT-3.9.3-2 (5.0)
    let expected = Malformed::InvalidReasonCode {
        code: 0x11,
        packet: "SUBACK",
    };
    let bytes = [0x90, 0x04, 0x00, 0x0A, 0x00, 0x11];
    assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
}

#[test]
fn suback_reason_codes_keep_the_order_of_the_topic_filters() {
    // MQTT-3.9.3-1 (5.0 and 3.1.1)
    let bytes = [0x90, 0x07, 0x00, 0x0A, 0x00, 0x02, 0x8F, 0x00, 0x01];
    let Packet::SubAck(suback) = decode_ok(&bytes, Protocol::V5) else {
        panic!("not a SUBACK");
    };
    let codes: Vec<u8> = suback.reason_codes.iter().map(|c| c.value()).collect();
    assert_eq!(codes, [0x02, 0x8F, 0x00, 0x01]);
}

// §3.10, §3.11 UNSUBSCRIBE, UNSUBACK

#[test]
fn unsubscribe_fixed_header_flags_must_be_0010() {
    // MQTT-3.10.1-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let error = flags_error(PacketType::Unsubscribe, 0);
        assert_decode_error(&[0xA0], protocol, error, MALFORMED);
    }
}

#[test]
fn v311_unsubscribe_payload_example_of_the_spec_decodes() {
    // §3.10.3.1, Figure 3.30 (3.1.1): "a/b" and "c/d".
    let bytes = [
        0xA2, 0x0C, 0x00, 0x0A, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x03, b'c', b'/', b'd',
    ];
    let packet = decode_ok(&bytes, Protocol::V3_1_1);
    let expected = Unsubscribe {
        packet_id: id(10),
        properties: Default::default(),
        filters: vec![s("a/b"), s("c/d")],
    };
    assert_eq!(packet, Packet::Unsubscribe(expected));
    assert_eq!(&encode(&packet, Protocol::V3_1_1)[..], &bytes);
}

#[test]
fn unsubscribe_topic_filters_must_be_utf8_strings() {
    // MQTT-3.10.3-1 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let mut body = vec![0, 1];
        if protocol.is_v5() {
            body.push(0);
        }
        body.extend(field(b"a\0"));
        let expected = bad_string("topic filter", StringError::NullCharacter);
        assert_decode_error(&frame(0xA2, &body), protocol, expected, MALFORMED);
    }
}

#[test]
fn unsubscribe_must_contain_at_least_one_topic_filter() {
    // MQTT-3.10.3-2 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let body: &[u8] = if protocol.is_v5() {
            &[0, 1, 0]
        } else {
            &[0, 1]
        };
        let expected = Violation::NoTopicFilters("UNSUBSCRIBE");
        assert_decode_error(&frame(0xA2, body), protocol, expected, PROTOCOL_ERROR);
    }
}

#[test]
fn v5_unsuback_must_use_an_unsubscribe_reason_code() {
    // MQTT-3.11.3-2
    let expected = Malformed::InvalidReasonCode {
        code: 0x01,
        packet: "UNSUBACK",
    };
    let bytes = [0xB0, 0x04, 0x00, 0x0A, 0x00, 0x01];
    assert_decode_error(&bytes, Protocol::V5, expected, MALFORMED);
}

#[test]
fn v5_unsuback_reason_codes_keep_the_order_of_the_topic_filters() {
    // MQTT-3.11.3-1
    let bytes = [0xB0, 0x06, 0x00, 0x0A, 0x00, 0x11, 0x00, 0x87];
    let Packet::UnsubAck(unsuback) = decode_ok(&bytes, Protocol::V5) else {
        panic!("not an UNSUBACK");
    };
    let codes: Vec<u8> = unsuback.reason_codes.iter().map(|c| c.value()).collect();
    assert_eq!(codes, [0x11, 0x00, 0x87]);
}

#[test]
fn v311_unsuback_holds_only_the_packet_identifier() {
    // §3.11 (3.1.1): UNSUBACK has no payload.
    let packet = decode_ok(&[0xB0, 0x02, 0x00, 0x0A], Protocol::V3_1_1);
    let Packet::UnsubAck(unsuback) = &packet else {
        panic!("not an UNSUBACK")
    };
    assert!(unsuback.reason_codes.is_empty());
    let bytes = [0xB0, 0x03, 0x00, 0x0A, 0x00];
    assert_decode_error(
        &bytes,
        Protocol::V3_1_1,
        Malformed::TrailingBytes(1),
        MALFORMED,
    );
}
