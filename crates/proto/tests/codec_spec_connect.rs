//! MQTT 5.0 and 3.1.1 §3.1 CONNECT and §3.2 CONNACK, as the codec
//! enforces them.
//! Conventions as in `codec_spec_format.rs`.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use pigeon_proto::codec::{ConnAck, Connect, Will};
use pigeon_proto::error::{Incompatible, Malformed, Misuse};
use pigeon_proto::properties::Properties;
use pigeon_proto::string::StringError;
use pigeon_proto::{Error, Packet, Protocol, QoS, ReasonCode};

// §3.1 CONNECT

/// The CONNECT of the spec's variable header example (Figure 3.6 in 3.1.1,
/// 3-6 in 5.0): user name, password, will QoS 1, will flag, clean start,
/// keep-alive 10; the payload fields are ours.
fn spec_example_connect(protocol: Protocol) -> Vec<u8> {
    let properties: &[u8] = if protocol.is_v5() {
        &[0x11, 0, 0, 0, 10]
    } else {
        &[]
    };
    let mut payload = field(b"client");
    if protocol.is_v5() {
        payload.push(0); // will properties
    }
    for part in [&b"will/topic"[..], b"gone", b"user", b"secret"] {
        payload.extend(field(part));
    }
    connect_with(protocol, 0xCE, properties, &payload)
}

fn spec_example_connect_packet(protocol: Protocol) -> Packet {
    let mut properties = Properties::default();
    if protocol.is_v5() {
        properties.session_expiry_interval = Some(10);
    }
    Packet::Connect(Box::new(Connect {
        protocol,
        clean_start: true,
        keep_alive: 10,
        properties,
        client_id: s("client"),
        will: Some(Will {
            topic: topic("will/topic"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Default::default(),
        }),
        username: Some(s("user")),
        password: Some(Bytes::from_static(b"secret")),
    }))
}

#[test]
fn v311_connect_variable_header_example_of_the_spec_decodes() {
    // §3.1.2.11, Figure 3.6 (3.1.1)
    let bytes = spec_example_connect(Protocol::V3_1_1);
    assert_eq!(&bytes[2..12], b"\x00\x04MQTT\x04\xCE\x00\x0A");
    assert_eq!(
        decode_ok(&bytes, Protocol::V3_1_1),
        spec_example_connect_packet(Protocol::V3_1_1)
    );
}

#[test]
fn v5_connect_variable_header_example_of_the_spec_decodes() {
    // §3.1.2.12, Figure 3-6 (5.0): Session Expiry Interval 10.
    let bytes = spec_example_connect(Protocol::V5);
    assert_eq!(
        &bytes[2..18],
        b"\x00\x04MQTT\x05\xCE\x00\x0A\x05\x11\x00\x00\x00\x0A"
    );
    assert_eq!(
        decode_ok(&bytes, Protocol::V5),
        spec_example_connect_packet(Protocol::V5)
    );
}

#[test]
fn connect_is_decoded_in_the_version_it_announces() {
    // CONNECT carries its own version: the connection's is not known yet.
    let bytes = spec_example_connect(Protocol::V5);
    for assumed in ALL_VERSIONS {
        assert_eq!(
            decode_ok(&bytes, assumed),
            spec_example_connect_packet(Protocol::V5)
        );
    }
}

#[test]
fn v31_connect_with_protocol_name_mqisdp_and_level_3_is_mqtt_3_1() {
    // MQTT 3.1 (IBM), §3.1: protocol name "MQIsdp", version 3.
    let bytes = [
        0x10, 0x0F, 0x00, 0x06, b'M', b'Q', b'I', b's', b'd', b'p', 0x03, 0x02, 0x00, 0x3C, 0x00,
        0x01, b'c',
    ];
    let Packet::Connect(connect) = decode_ok(&bytes, Protocol::V3_1_1) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.protocol, Protocol::V3_1);
    assert_eq!((connect.keep_alive, connect.client_id.as_str()), (60, "c"));
    assert_eq!(
        &encode(&Packet::Connect(connect), Protocol::V3_1)[..],
        &bytes
    );
}

#[test]
fn protocol_name_other_than_mqtt_is_an_unsupported_protocol() {
    // MQTT-3.1.2-1 (5.0 and 3.1.1)
    for level in [4, 5] {
        let mut body = field(b"MQTX");
        body.extend_from_slice(&[level, 0x02, 0, 10, 0]);
        body.extend(field(b"c"));
        let expected = Incompatible::ProtocolName;
        let reason = ReasonCode::UNSUPPORTED_PROTOCOL_VERSION;
        assert_decode_error(&frame(0x10, &body), Protocol::V5, expected, reason);
    }
}

#[test]
fn v311_unsupported_protocol_level_is_answered_with_return_code_1() {
    // MQTT-3.1.2-2 (3.1.1): level 6 is refused, and the reason code the
    // error maps to goes out as CONNACK return code 0x01.
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[6, 0x02, 0, 10]);
    body.extend(field(b"c"));
    let error = decode_err(&frame(0x10, &body), Protocol::V3_1_1);
    assert_eq!(error, Incompatible::ProtocolLevel(6).into());
    let reason_code = error.reason_code().expect("a peer error");
    let connack = Packet::ConnAck(ConnAck {
        reason_code,
        ..ConnAck::default()
    });
    assert_eq!(
        &encode(&connack, Protocol::V3_1_1)[..],
        &[0x20, 0x02, 0x00, 0x01]
    );
}

#[test]
fn v5_unsupported_protocol_version_is_answered_with_reason_code_0x84() {
    // MQTT-3.1.2-2 (5.0)
    let mut body = field(b"MQTT");
    body.extend_from_slice(&[6, 0x02, 0, 10]);
    body.extend(field(b"c"));
    let error = decode_err(&frame(0x10, &body), Protocol::V5);
    let reason_code = error.reason_code().expect("a peer error");
    let connack = Packet::ConnAck(ConnAck {
        reason_code,
        ..ConnAck::default()
    });
    assert_eq!(
        &encode(&connack, Protocol::V5)[..],
        &[0x20, 0x03, 0x00, 0x84, 0x00]
    );
}

#[test]
fn reserved_connect_flag_must_be_zero() {
    // MQTT-3.1.2-3 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x01, &[], &field(b"c"));
        let expected = Malformed::ReservedBit("CONNECT flags");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn will_qos_must_be_zero_when_the_will_flag_is_zero() {
    // MQTT-3.1.2-11 (5.0), MQTT-3.1.2-13 (3.1.1)
    for protocol in ALL_VERSIONS {
        for will_qos in [0x08, 0x10] {
            let bytes = connect_with(protocol, 0x02 | will_qos, &[], &field(b"c"));
            let expected = Malformed::ConnectFlags("will QoS or retain without will flag");
            assert_decode_error(&bytes, protocol, expected, MALFORMED);
        }
    }
}

#[test]
fn will_qos_must_not_be_3() {
    // MQTT-3.1.2-12 (5.0), MQTT-3.1.2-14 (3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x02 | 0x04 | 0x18, &[], &field(b"c"));
        assert_decode_error(&bytes, protocol, Malformed::InvalidQos, MALFORMED);
    }
}

#[test]
fn will_retain_must_be_zero_when_the_will_flag_is_zero() {
    // MQTT-3.1.2-13 (5.0), MQTT-3.1.2-15 (3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x02 | 0x20, &[], &field(b"c"));
        let expected = Malformed::ConnectFlags("will QoS or retain without will flag");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn will_fields_must_be_present_when_the_will_flag_is_one() {
    // MQTT-3.1.2-9 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x02 | 0x04, &[], &field(b"c"));
        let first_will_field = if protocol.is_v5() {
            "property length"
        } else {
            "will topic"
        };
        let expected = Malformed::Truncated(first_will_field);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn v311_will_fields_must_not_be_present_when_the_will_flag_is_zero() {
    // MQTT-3.1.2-11 (3.1.1)
    let mut payload = field(b"c");
    payload.extend(field(b"will/topic"));
    payload.extend(field(b"gone"));
    let bytes = connect_with(Protocol::V3_1_1, 0x02, &[], &payload);
    assert_decode_error(
        &bytes,
        Protocol::V3_1_1,
        Malformed::TrailingBytes(18),
        MALFORMED,
    );
}

#[test]
fn user_name_must_not_be_present_when_its_flag_is_zero() {
    // MQTT-3.1.2-16 (5.0), MQTT-3.1.2-18 (3.1.1)
    for protocol in ALL_VERSIONS {
        let mut payload = field(b"c");
        payload.extend(field(b"user"));
        let bytes = connect_with(protocol, 0x02, &[], &payload);
        assert_decode_error(&bytes, protocol, Malformed::TrailingBytes(6), MALFORMED);
    }
}

#[test]
fn user_name_must_be_present_when_its_flag_is_one() {
    // MQTT-3.1.2-17 (5.0), MQTT-3.1.2-19 (3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x82, &[], &field(b"c"));
        let expected = Malformed::Truncated("user name");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn password_must_not_be_present_when_its_flag_is_zero() {
    // MQTT-3.1.2-18 (5.0), MQTT-3.1.2-20 (3.1.1)
    for protocol in ALL_VERSIONS {
        let mut payload = field(b"c");
        payload.extend(field(b"user"));
        payload.extend(field(b"secret"));
        let bytes = connect_with(protocol, 0x82, &[], &payload);
        assert_decode_error(&bytes, protocol, Malformed::TrailingBytes(8), MALFORMED);
    }
}

#[test]
fn password_must_be_present_when_its_flag_is_one() {
    // MQTT-3.1.2-19 (5.0), MQTT-3.1.2-21 (3.1.1)
    for protocol in ALL_VERSIONS {
        let mut payload = field(b"c");
        payload.extend(field(b"user"));
        let bytes = connect_with(protocol, 0xC2, &[], &payload);
        let expected = Malformed::Truncated("password");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn v311_password_flag_must_be_zero_when_the_user_name_flag_is_zero() {
    // MQTT-3.1.2-22 (3.1.1)
    for protocol in V3_VERSIONS {
        let mut payload = field(b"c");
        payload.extend(field(b"secret"));
        let bytes = connect_with(protocol, 0x42, &[], &payload);
        let expected = Malformed::ConnectFlags("password without user name");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn v5_password_without_a_user_name_is_allowed() {
    // §3.1.2.9 (5.0) drops the 3.1.1 rule MQTT-3.1.2-22.
    let mut payload = field(b"c");
    payload.extend(field(b"secret"));
    let Packet::Connect(connect) = decode_ok(
        &connect_with(Protocol::V5, 0x42, &[], &payload),
        Protocol::V5,
    ) else {
        panic!("not a CONNECT");
    };
    assert_eq!(connect.username, None);
    assert_eq!(connect.password.as_deref(), Some(&b"secret"[..]));
}

#[test]
fn v311_encoding_a_password_without_a_user_name_is_refused() {
    // MQTT-3.1.2-22 (3.1.1)
    let mut connect = Connect::new(Protocol::V3_1_1, s("c"));
    connect.password = Some(Bytes::from_static(b"secret"));
    let error = Packet::Connect(Box::new(connect))
        .encode(Protocol::V3_1_1, &mut BytesMut::new())
        .unwrap_err();
    assert!(
        matches!(error, Error::Misuse(Misuse::InvalidValue(_))),
        "{error:?}"
    );
}

#[test]
fn v311_connect_payload_fields_appear_in_the_order_of_the_spec() {
    // MQTT-3.1.3-1 (3.1.1): client id, will topic, will message, user
    // name, password.
    let bytes = encode(
        &spec_example_connect_packet(Protocol::V3_1_1),
        Protocol::V3_1_1,
    );
    let mut payload = field(b"client");
    for part in [&b"will/topic"[..], b"gone", b"user", b"secret"] {
        payload.extend(field(part));
    }
    assert_eq!(&bytes[12..], &payload[..]);
}

#[test]
fn v5_connect_payload_fields_appear_in_the_order_of_the_spec() {
    // MQTT-3.1.3-1 (5.0): client id, will properties, will topic, will
    // payload, user name, password.
    let Packet::Connect(mut connect) = spec_example_connect_packet(Protocol::V5) else {
        unreachable!()
    };
    if let Some(will) = connect.will.as_mut() {
        will.properties.will_delay_interval = Some(5);
    }
    let bytes = encode(&Packet::Connect(connect), Protocol::V5);
    let mut payload = field(b"client");
    payload.extend(props(&[0x18, 0, 0, 0, 5]));
    for part in [&b"will/topic"[..], b"gone", b"user", b"secret"] {
        payload.extend(field(part));
    }
    assert_eq!(&bytes[18..], &payload[..]);
}

#[test]
fn client_identifier_must_be_present() {
    // MQTT-3.1.3-3 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x02, &[], &[]);
        let expected = Malformed::Truncated("client identifier");
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn client_identifier_must_be_a_utf8_string() {
    // MQTT-3.1.3-4 (5.0 and 3.1.1)
    for protocol in ALL_VERSIONS {
        let bytes = connect_with(protocol, 0x02, &[], &field(b"c\xFF"));
        let expected = bad_string("client identifier", StringError::InvalidUtf8);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn zero_length_client_identifier_is_decoded_for_the_server_to_decide() {
    // MQTT-3.1.3-6 (5.0 and 3.1.1): the server may accept it and assign one.
    for protocol in ALL_VERSIONS {
        let Packet::Connect(connect) =
            decode_ok(&connect_with(protocol, 0x02, &[], &field(b"")), protocol)
        else {
            panic!("not a CONNECT");
        };
        assert!(connect.client_id.is_empty());
    }
}

#[test]
fn will_topic_must_be_a_utf8_string() {
    // MQTT-3.1.3-11 (5.0), MQTT-3.1.3-10 (3.1.1)
    for protocol in ALL_VERSIONS {
        let mut payload = field(b"c");
        if protocol.is_v5() {
            payload.push(0);
        }
        payload.extend(field(b"w\xC0\xAF"));
        payload.extend(field(b"gone"));
        let bytes = connect_with(protocol, 0x06, &[], &payload);
        let expected = bad_string("will topic", StringError::InvalidUtf8);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

#[test]
fn user_name_must_be_a_utf8_string() {
    // MQTT-3.1.3-12 (5.0), MQTT-3.1.3-11 (3.1.1)
    for protocol in ALL_VERSIONS {
        let mut payload = field(b"c");
        payload.extend(field(b"\xED\xBF\xBF"));
        let bytes = connect_with(protocol, 0x82, &[], &payload);
        let expected = bad_string("user name", StringError::InvalidUtf8);
        assert_decode_error(&bytes, protocol, expected, MALFORMED);
    }
}

// §3.2 CONNACK

#[test]
fn connack_acknowledge_flags_bits_7_to_1_are_reserved() {
    // MQTT-3.2.2-1 (5.0); §3.2.2.1 (3.1.1)
    for protocol in ALL_VERSIONS {
        let body: &[u8] = if protocol.is_v5() {
            &[0x02, 0, 0]
        } else {
            &[0x02, 0]
        };
        let expected = Malformed::ReservedBit("CONNACK flags");
        assert_decode_error(&frame(0x20, body), protocol, expected, MALFORMED);
    }
}

#[test]
fn v311_connack_return_codes_are_those_of_table_3_1() {
    // §3.2.2.3 (3.1.1): each return code stands for the v5 reason code of
    // the same meaning, and goes back out as the same byte.
    let table = [
        (0, ReasonCode::SUCCESS),
        (1, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
        (2, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID),
        (3, ReasonCode::SERVER_UNAVAILABLE),
        (4, ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        (5, ReasonCode::NOT_AUTHORIZED),
    ];
    for (return_code, reason_code) in table {
        let bytes = [0x20, 0x02, 0x00, return_code];
        let packet = decode_ok(&bytes, Protocol::V3_1_1);
        let expected = ConnAck {
            reason_code,
            ..ConnAck::default()
        };
        assert_eq!(packet, Packet::ConnAck(expected));
        assert_eq!(&encode(&packet, Protocol::V3_1_1)[..], &bytes);
    }
}

#[test]
fn v311_connack_return_codes_6_to_255_are_reserved() {
    // §3.2.2.3 (3.1.1)
    for code in [6, 0x80, 0xFF] {
        let expected = Malformed::InvalidReasonCode {
            code,
            packet: "CONNACK",
        };
        assert_decode_error(
            &[0x20, 0x02, 0x00, code],
            Protocol::V3_1_1,
            expected,
            MALFORMED,
        );
    }
}

#[test]
fn v5_connack_must_use_a_connect_reason_code() {
    // MQTT-3.2.2-8 (5.0)
    for code in [0x01, 0x10, 0x8E] {
        let expected = Malformed::InvalidReasonCode {
            code,
            packet: "CONNACK",
        };
        assert_decode_error(
            &[0x20, 0x03, 0x00, code, 0x00],
            Protocol::V5,
            expected,
            MALFORMED,
        );
    }
}
