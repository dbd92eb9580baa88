//! Property tests: every packet type, in every version it exists in,
//! decodes to what was encoded, including property sets with every property
//! its packet allows (user properties repeated). Values are those the
//! version can carry: 3.x has no properties and no reason codes beyond its
//! CONNACK return codes and SUBACK 0/1/2/0x80.
//!
//! Also catalogue F10: packets in one buffer decode in order, and bytes fed
//! one at a time decode to the same packets as all at once.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::ALL_VERSIONS;
use pigeon_proto::codec::{
    Ack, ConnAck, Connect, Disconnect, Publish, RetainHandling, SubAck, Subscribe, SubscribeFilter,
    SubscriptionOptions, Unsubscribe, Will, MAX_PACKET_SIZE,
};
use pigeon_proto::properties::{Context, Properties};
use pigeon_proto::string::MqttStr;
use pigeon_proto::topic::TopicName;
use pigeon_proto::{decode, Packet, PacketId, PacketType, Protocol, QoS, ReasonCode};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// Values

fn mqtt_str(max: usize) -> impl Strategy<Value = MqttStr> {
    // Any scalar value but U+0000, so multi-byte UTF-8 shows up too.
    proptest::string::string_regex(&format!("[^\\x00]{{0,{max}}}"))
        .expect("valid regex")
        .prop_map(|s| MqttStr::try_from(s).expect("no NUL"))
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    proptest::string::string_regex("[^\\x00+#]{1,12}")
        .expect("valid regex")
        .prop_map(|s| TopicName::try_from(s.as_str()).expect("no wildcard"))
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).expect("non-zero"))
}

fn qos() -> impl Strategy<Value = QoS> {
    select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
}

/// The reason codes a packet may carry (MQTT 5.0 §3.x.2.1 tables; 3.1.1
/// Table 3.1 and §3.9.3).
fn reason_code(kind: PacketType, protocol: Protocol) -> BoxedStrategy<ReasonCode> {
    let codes: &[u8] = match (kind, protocol.is_v5()) {
        (PacketType::ConnAck, true) => &[
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
        (PacketType::ConnAck, false) => &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87],
        (PacketType::PubAck | PacketType::PubRec, true) => {
            &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
        }
        (PacketType::PubRel | PacketType::PubComp, true) => &[0x00, 0x92],
        (PacketType::SubAck, true) => &[
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
        (PacketType::SubAck, false) => &[0x00, 0x01, 0x02, 0x80],
        (PacketType::UnsubAck, true) => &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
        (PacketType::Disconnect, true) => &[
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93,
            0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1,
            0xA2,
        ],
        (PacketType::Auth, true) => &[0x00, 0x18, 0x19],
        _ => &[0x00],
    };
    select(codes).prop_map(ReasonCode::from_u8).boxed()
}

// Properties

/// Whether property `id` may appear in `ctx` (MQTT 5.0 §2.2.2.2), written
/// out from the spec's table rather than taken from the codec.
fn allowed(id: u8, ctx: Context) -> bool {
    use Context::*;
    let contexts: &[Context] = match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => &[Publish, Will],
        0x0B => &[Publish, Subscribe],
        0x11 => &[Connect, ConnAck, Disconnect],
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => &[ConnAck],
        0x15 | 0x16 => &[Connect, ConnAck, Auth],
        0x17 | 0x19 => &[Connect],
        0x18 => &[Will],
        0x1C => &[ConnAck, Disconnect],
        0x1F => &[ConnAck, Ack, SubAck, UnsubAck, Disconnect, Auth],
        0x21 | 0x22 | 0x27 => &[Connect, ConnAck],
        0x23 => &[Publish],
        0x26 => return true,
        _ => &[],
    };
    contexts.contains(&ctx)
}

/// Every field present (`full`) or each present half of the time.
fn maybe<T: std::fmt::Debug + Clone + 'static>(
    full: bool,
    value: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    match full {
        true => value.prop_map(Some).boxed(),
        false => proptest::option::of(value).boxed(),
    }
}

/// Properties of every kind, then cut down to those `ctx` allows.
fn properties_in(ctx: Context, full: bool) -> BoxedStrategy<Properties> {
    let min_len = usize::from(full);
    let flags = vec(maybe(full, any::<bool>()), 7);
    let u32s = vec(maybe(full, any::<u32>()), 3);
    let u16s = vec(maybe(full, any::<u16>()), 3);
    let non_zero = (maybe(full, 1..=u32::MAX), maybe(full, 1..=u16::MAX));
    let strings = vec(maybe(full, mqtt_str(8)), 6);
    let binaries = vec(maybe(full, binary(8)), 2);
    let response_topic = maybe(full, topic_name());
    let subscription_ids = vec(1..=268_435_455u32, min_len..3);
    let maximum_qos = maybe(full, select(vec![QoS::AtMostOnce, QoS::AtLeastOnce]));
    let users = vec((mqtt_str(6), mqtt_str(6)), min_len * 2..5);
    let all = (flags, u32s, u16s, non_zero, strings, binaries);
    let more = (response_topic, subscription_ids, maximum_qos, users);
    (all, more)
        .prop_map(
            move |((flags, u32s, u16s, non_zero, strings, binaries), more)| {
                let (response_topic, subscription_ids, max_qos, users) = more;
                let mut p = Properties::default();
                p.payload_format_indicator = flags[0];
                p.request_problem_information = flags[1];
                p.request_response_information = flags[2];
                p.retain_available = flags[3];
                p.wildcard_subscription_available = flags[4];
                p.subscription_identifier_available = flags[5];
                p.shared_subscription_available = flags[6];
                p.message_expiry_interval = u32s[0];
                p.session_expiry_interval = u32s[1];
                p.will_delay_interval = u32s[2];
                p.server_keep_alive = u16s[0];
                p.topic_alias_maximum = u16s[1];
                p.topic_alias = u16s[2];
                (p.maximum_packet_size, p.receive_maximum) = non_zero;
                p.content_type = strings[0].clone();
                p.assigned_client_identifier = strings[1].clone();
                p.authentication_method = strings[2].clone();
                p.response_information = strings[3].clone();
                p.server_reference = strings[4].clone();
                p.reason_string = strings[5].clone();
                p.correlation_data = binaries[0].clone();
                p.authentication_data = binaries[1].clone();
                p.response_topic = response_topic;
                p.subscription_identifiers = subscription_ids;
                p.maximum_qos = max_qos;
                p.user_properties = users;
                if let Some(first) = p.user_properties.first().cloned() {
                    p.user_properties.push(first); // a repeated pair
                }
                restrict(p, ctx)
            },
        )
        .boxed()
}

/// Clears what `ctx` does not allow; SUBSCRIBE takes one identifier.
fn restrict(mut p: Properties, ctx: Context) -> Properties {
    macro_rules! keep {
        ($($field:ident = $id:literal),* $(,)?) => {
            $(if !allowed($id, ctx) { p.$field = Default::default(); })*
        };
    }
    keep!(
        payload_format_indicator = 0x01,
        message_expiry_interval = 0x02,
        content_type = 0x03,
        response_topic = 0x08,
        correlation_data = 0x09,
        subscription_identifiers = 0x0B,
        session_expiry_interval = 0x11,
        assigned_client_identifier = 0x12,
        server_keep_alive = 0x13,
        authentication_method = 0x15,
        authentication_data = 0x16,
        request_problem_information = 0x17,
        will_delay_interval = 0x18,
        request_response_information = 0x19,
        response_information = 0x1A,
        server_reference = 0x1C,
        reason_string = 0x1F,
        receive_maximum = 0x21,
        topic_alias_maximum = 0x22,
        topic_alias = 0x23,
        maximum_qos = 0x24,
        retain_available = 0x25,
        maximum_packet_size = 0x27,
        wildcard_subscription_available = 0x28,
        subscription_identifier_available = 0x29,
        shared_subscription_available = 0x2A,
    );
    if ctx == Context::Subscribe {
        p.subscription_identifiers.truncate(1);
    }
    p
}

/// No properties before 5.0; in 5.0 some, or every one allowed.
fn properties(ctx: Context, protocol: Protocol) -> BoxedStrategy<Properties> {
    match protocol.is_v5() {
        false => Just(Properties::default()).boxed(),
        true => prop_oneof![properties_in(ctx, false), properties_in(ctx, true)].boxed(),
    }
}

// Packets

fn will(protocol: Protocol) -> impl Strategy<Value = Will> {
    let props = properties(Context::Will, protocol);
    (topic_name(), binary(16), qos(), any::<bool>(), props).prop_map(
        |(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

fn connect(protocol: Protocol) -> BoxedStrategy<Packet> {
    let props = properties(Context::Connect, protocol);
    let credentials = (
        proptest::option::of(mqtt_str(12)),
        proptest::option::of(binary(12)),
    );
    let will = proptest::option::of(will(protocol));
    (
        any::<bool>(),
        any::<u16>(),
        props,
        mqtt_str(23),
        will,
        credentials,
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, credentials)| {
                let (username, mut password) = credentials;
                if !protocol.is_v5() && username.is_none() {
                    password = None; // MQTT-3.1.2-22 (3.1.1)
                }
                let connect = Connect {
                    protocol,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                };
                Packet::Connect(Box::new(connect))
            },
        )
        .boxed()
}

fn connack(protocol: Protocol) -> BoxedStrategy<Packet> {
    let props = properties(Context::ConnAck, protocol);
    (
        any::<bool>(),
        reason_code(PacketType::ConnAck, protocol),
        props,
    )
        .prop_map(|(session_present, reason_code, properties)| {
            Packet::ConnAck(ConnAck {
                session_present,
                reason_code,
                properties: properties.into(),
            })
        })
        .boxed()
}

fn publish_message(protocol: Protocol) -> impl Strategy<Value = Publish> {
    let flags = (qos(), any::<bool>(), any::<bool>());
    let props = properties(Context::Publish, protocol);
    (flags, topic_name(), packet_id(), props, binary(64)).prop_map(
        |((qos, dup, retain), topic, id, properties, payload)| {
            let packet_id = (qos != QoS::AtMostOnce).then_some(id);
            let dup = dup && packet_id.is_some();
            Publish {
                dup,
                qos,
                retain,
                topic,
                packet_id,
                properties: properties.into(),
                payload,
            }
        },
    )
}

fn publish(protocol: Protocol) -> BoxedStrategy<Packet> {
    publish_message(protocol).prop_map(Packet::Publish).boxed()
}

fn ack(kind: PacketType) -> impl Fn(Protocol) -> BoxedStrategy<Packet> {
    move |protocol| {
        let props = properties(Context::Ack, protocol);
        (packet_id(), reason_code(kind, protocol), props)
            .prop_map(move |(packet_id, reason_code, properties)| {
                let ack = Ack {
                    packet_id,
                    reason_code,
                    properties: properties.into(),
                };
                match kind {
                    PacketType::PubAck => Packet::PubAck(ack),
                    PacketType::PubRec => Packet::PubRec(ack),
                    PacketType::PubRel => Packet::PubRel(ack),
                    _ => Packet::PubComp(ack),
                }
            })
            .boxed()
    }
}

fn subscription_options(protocol: Protocol) -> BoxedStrategy<SubscriptionOptions> {
    let handling = select(vec![
        RetainHandling::SendAtSubscribe,
        RetainHandling::SendAtNewSubscribe,
        RetainHandling::DoNotSend,
    ]);
    match protocol.is_v5() {
        false => qos()
            .prop_map(|qos| SubscriptionOptions {
                qos,
                ..Default::default()
            })
            .boxed(),
        true => (qos(), any::<bool>(), any::<bool>(), handling)
            .prop_map(
                |(qos, no_local, retain_as_published, retain_handling)| SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published,
                    retain_handling,
                },
            )
            .boxed(),
    }
}

fn subscribe(protocol: Protocol) -> BoxedStrategy<Packet> {
    let filter = (mqtt_str(16), subscription_options(protocol))
        .prop_map(|(filter, options)| SubscribeFilter { filter, options });
    let props = properties(Context::Subscribe, protocol);
    (packet_id(), props, vec(filter, 1..5))
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties: properties.into(),
                filters,
            })
        })
        .boxed()
}

fn suback(protocol: Protocol) -> BoxedStrategy<Packet> {
    let codes = vec(reason_code(PacketType::SubAck, protocol), 1..5);
    (packet_id(), properties(Context::SubAck, protocol), codes)
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::SubAck(SubAck {
                packet_id,
                properties: properties.into(),
                reason_codes,
            })
        })
        .boxed()
}

fn unsubscribe(protocol: Protocol) -> BoxedStrategy<Packet> {
    let props = properties(Context::Unsubscribe, protocol);
    (packet_id(), props, vec(mqtt_str(16), 1..5))
        .prop_map(|(packet_id, properties, filters)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties: properties.into(),
                filters,
            })
        })
        .boxed()
}

fn unsuback(protocol: Protocol) -> BoxedStrategy<Packet> {
    // 3.1.1 UNSUBACK carries no reason codes at all.
    let count = if protocol.is_v5() { 1..5 } else { 0..1 };
    let codes = vec(reason_code(PacketType::UnsubAck, protocol), count);
    (packet_id(), properties(Context::UnsubAck, protocol), codes)
        .prop_map(|(packet_id, properties, reason_codes)| {
            Packet::UnsubAck(SubAck {
                packet_id,
                properties: properties.into(),
                reason_codes,
            })
        })
        .boxed()
}

fn pingreq(_: Protocol) -> BoxedStrategy<Packet> {
    Just(Packet::PingReq).boxed()
}

fn pingresp(_: Protocol) -> BoxedStrategy<Packet> {
    Just(Packet::PingResp).boxed()
}

fn disconnect(protocol: Protocol) -> BoxedStrategy<Packet> {
    let props = properties(Context::Disconnect, protocol);
    (reason_code(PacketType::Disconnect, protocol), props)
        .prop_map(|(reason_code, properties)| {
            Packet::Disconnect(Disconnect {
                reason_code,
                properties: properties.into(),
            })
        })
        .boxed()
}

fn auth(protocol: Protocol) -> BoxedStrategy<Packet> {
    (
        reason_code(PacketType::Auth, protocol),
        properties(Context::Auth, protocol),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::Auth(Disconnect {
                reason_code,
                properties: properties.into(),
            })
        })
        .boxed()
}

/// A version and a packet of `kind` valid in it.
fn in_versions(
    versions: &[Protocol],
    kind: impl Fn(Protocol) -> BoxedStrategy<Packet> + 'static,
) -> impl Strategy<Value = (Protocol, Packet)> {
    select(versions.to_vec()).prop_flat_map(move |p| (Just(p), kind(p)))
}

/// Any packet that exists in `protocol`.
fn any_packet(protocol: Protocol) -> BoxedStrategy<Packet> {
    let mut kinds = vec![
        connect(protocol),
        connack(protocol),
        publish(protocol),
        ack(PacketType::PubAck)(protocol),
        ack(PacketType::PubRec)(protocol),
        ack(PacketType::PubRel)(protocol),
        ack(PacketType::PubComp)(protocol),
        subscribe(protocol),
        suback(protocol),
        unsubscribe(protocol),
        unsuback(protocol),
        pingreq(protocol),
        pingresp(protocol),
        disconnect(protocol),
    ];
    if protocol.is_v5() {
        kinds.push(auth(protocol));
    }
    proptest::strategy::Union::new(kinds).boxed()
}

// Checks

fn assert_round_trip(packet: &Packet, protocol: Protocol) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::new();
    if let Err(error) = packet.encode(protocol, &mut buf) {
        return Err(TestCaseError::fail(format!("{error} encoding {packet:?}")));
    }
    prop_assert_eq!(buf.len(), packet.encoded_len(protocol));
    let decoded = decode(&mut buf, protocol, MAX_PACKET_SIZE);
    prop_assert_eq!(decoded, Ok(Some(packet.clone())));
    prop_assert!(buf.is_empty(), "{} bytes left", buf.len());
    Ok(())
}

fn encode_all(packets: &[Packet], protocol: Protocol) -> BytesMut {
    let mut buf = BytesMut::new();
    for packet in packets {
        packet
            .encode(protocol, &mut buf)
            .expect("generated packets are encodable");
    }
    buf
}

/// Decodes until more bytes are needed.
fn decode_available(buf: &mut BytesMut, protocol: Protocol, out: &mut Vec<Packet>) {
    while let Some(packet) = decode(buf, protocol, MAX_PACKET_SIZE).expect("valid stream") {
        out.push(packet);
    }
}

fn stream() -> impl Strategy<Value = (Protocol, Vec<Packet>)> {
    select(ALL_VERSIONS.to_vec()).prop_flat_map(|p| (Just(p), vec(any_packet(p), 1..8)))
}

proptest! {
    #[test]
    fn connect_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, connect)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn connack_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, connack)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn publish_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, publish)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn puback_round_trips(
        (protocol, packet) in in_versions(&ALL_VERSIONS, ack(PacketType::PubAck))
    ) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn pubrec_round_trips(
        (protocol, packet) in in_versions(&ALL_VERSIONS, ack(PacketType::PubRec))
    ) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn pubrel_round_trips(
        (protocol, packet) in in_versions(&ALL_VERSIONS, ack(PacketType::PubRel))
    ) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn pubcomp_round_trips(
        (protocol, packet) in in_versions(&ALL_VERSIONS, ack(PacketType::PubComp))
    ) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn subscribe_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, subscribe)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn suback_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, suback)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn unsubscribe_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, unsubscribe)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn unsuback_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, unsuback)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn pingreq_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, pingreq)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn pingresp_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, pingresp)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn disconnect_round_trips((protocol, packet) in in_versions(&ALL_VERSIONS, disconnect)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn auth_round_trips((protocol, packet) in in_versions(&[Protocol::V5], auth)) {
        assert_round_trip(&packet, protocol)?;
    }

    #[test]
    fn publish_header_then_payload_is_the_whole_packet(
        (protocol, publish) in select(ALL_VERSIONS.to_vec())
            .prop_flat_map(|p| (Just(p), publish_message(p)))
    ) {
        let mut split = BytesMut::new();
        publish.encode_header(protocol, &mut split).expect("encodable");
        split.put_slice(&publish.payload);
        let packet = Packet::Publish(publish);
        prop_assert_eq!(&split[..], &encode_all(&[packet], protocol)[..]);
    }

    #[test]
    fn packets_in_one_buffer_decode_in_order((protocol, packets) in stream()) {
        // Catalogue F10, "sticky frames".
        let mut buf = encode_all(&packets, protocol);
        let mut decoded = Vec::new();
        decode_available(&mut buf, protocol, &mut decoded);
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn bytes_fed_one_at_a_time_decode_as_when_fed_at_once((protocol, packets) in stream()) {
        // Catalogue F10, one byte per read().
        let bytes = encode_all(&packets, protocol);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for &byte in &bytes[..] {
            buf.put_u8(byte);
            decode_available(&mut buf, protocol, &mut decoded);
        }
        prop_assert_eq!(decoded, packets);
        prop_assert!(buf.is_empty());
    }
}
