//! QoS 1 and QoS 2.

use super::*;

// --- QoS 1 and QoS 2 -----------------------------------------------------

// MQTT-4.3.2-3 (v5)
// MQTT-4.3.2-1 (v311)
#[test]
fn qos1_publish_stays_unacknowledged_until_its_puback() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        let p = client
            .publish(message("t", QoS::AtLeastOnce))
            .unwrap()
            .unwrap();
        let out = sent(&mut client, now);
        let wired = publishes(&out)[0];
        assert_eq!(
            (wired.packet_id, wired.qos, wired.dup),
            (Some(p), QoS::AtLeastOnce, false)
        );
        feed(&mut client, now, Packet::PubAck(Ack::new(p.next()))).unwrap();
        assert_eq!(client.session().outbound_len(), 1, "{v}: other PUBACK");
        feed(&mut client, now, Packet::PubAck(Ack::new(p))).unwrap();
        assert!(client.session().is_empty(), "{v}");
        let delivered = events(&mut client);
        assert!(matches!(delivered[..], [Event::Delivered { packet_id, .. }] if packet_id == p));
    }
}

// MQTT-4.3.2-4 (v5)
#[test]
fn receiver_sends_puback_with_the_identifier_once_it_owns_the_message_v5() {
    let (now, mut server) = server(Protocol::V5);
    feed(
        &mut server,
        now,
        Packet::Publish(with_id(message("t", QoS::AtLeastOnce), 12)),
    )
    .unwrap();
    assert_eq!(
        sent(&mut server, now),
        [],
        "nothing before the application acks"
    );
    server.ack(id(12), ReasonCode::SUCCESS).unwrap();
    assert_eq!(sent(&mut server, now), [Packet::PubAck(Ack::new(id(12)))]);
}

// MQTT-4.3.2-5 (v5)
// MQTT-4.3.2-2 (v311)
#[test]
fn publish_reusing_an_acknowledged_qos1_identifier_is_a_new_message() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let first = with_id(message("t", QoS::AtLeastOnce), 3);
        feed(&mut server, now, Packet::Publish(first.clone())).unwrap();
        server.ack(id(3), ReasonCode::SUCCESS).unwrap();
        let mut again = first;
        again.dup = true;
        feed(&mut server, now, Packet::Publish(again)).unwrap();
        assert_eq!(messages(&mut server).len(), 2, "{v}");
        server.ack(id(3), ReasonCode::SUCCESS).unwrap();
        let pubacks = sent(&mut server, now);
        assert_eq!(
            pubacks,
            [
                Packet::PubAck(Ack::new(id(3))),
                Packet::PubAck(Ack::new(id(3)))
            ]
        );
    }
}

// MQTT-4.3.3-2 (v5)
#[test]
fn qos2_publish_goes_out_with_its_identifier_and_dup_0_v5() {
    let (now, mut client) = client(Protocol::V5);
    let mut p = message("t", QoS::ExactlyOnce);
    p.dup = true;
    let assigned = client.publish(p).unwrap().unwrap();
    let out = sent(&mut client, now);
    let wired = publishes(&out)[0];
    assert_eq!(
        (wired.packet_id, wired.qos, wired.dup),
        (Some(assigned), QoS::ExactlyOnce, false)
    );
}

// MQTT-4.3.3-3 (v5)
// MQTT-4.3.3-1 (v311)
#[test]
fn qos2_publish_stays_unacknowledged_until_its_pubrec() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        let p = client
            .publish(message("t", QoS::ExactlyOnce))
            .unwrap()
            .unwrap();
        let _ = sent(&mut client, now);
        feed(&mut client, now, Packet::PubComp(Ack::new(p.next()))).unwrap();
        let held = client.session().outbound().next().cloned();
        assert!(
            matches!(held, Some(pigeon_proto::flow::Outbound::AwaitPubRec(_))),
            "{v}"
        );
        feed(&mut client, now, Packet::PubRec(Ack::new(p))).unwrap();
        let held = client.session().outbound().next().cloned();
        assert_eq!(
            held,
            Some(pigeon_proto::flow::Outbound::AwaitPubComp(p)),
            "{v}"
        );
    }
}

// MQTT-4.3.3-4 (v5)
#[test]
fn pubrec_is_answered_with_pubrel_carrying_the_same_identifier_v5() {
    let (now, mut client) = client(Protocol::V5);
    let p = client
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut client, now);
    feed(&mut client, now, Packet::PubRec(Ack::new(p))).unwrap();
    assert_eq!(sent(&mut client, now), [Packet::PubRel(Ack::new(p))]);
}

/// A server session whose one QoS 2 message got its PUBREC and PUBREL
/// but no PUBCOMP before the connection dropped.
fn session_awaiting_pubcomp(v: Protocol) -> (PacketId, SessionState) {
    let mut c = connect(v);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let p = server
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    feed(&mut server, now, Packet::PubRec(Ack::new(p))).unwrap();
    let _ = sent(&mut server, now);
    (p, server.into_session())
}

// MQTT-4.3.3-5 (v5)
#[test]
fn pubrel_stays_unacknowledged_until_pubcomp_and_is_resent_on_resume_v5() {
    let (p, session) = session_awaiting_pubcomp(Protocol::V5);
    let (now, mut server) = resume_server(Protocol::V5, session);
    let out = sent(&mut server, now);
    assert_eq!(out[1..], [Packet::PubRel(Ack::new(p))]);
    feed(&mut server, now, Packet::PubComp(Ack::new(p))).unwrap();
    assert!(server.session().is_empty());
}

// MQTT-4.3.3-6 (v5)
#[test]
fn publish_is_not_resent_once_its_pubrel_was_sent_v5() {
    let (_, session) = session_awaiting_pubcomp(Protocol::V5);
    let (now, mut server) = resume_server(Protocol::V5, session);
    assert!(publishes(&sent(&mut server, now)).is_empty());
}

// MQTT-4.3.3-7 (v5): a sent QoS 2 message is resent on resume even after
// its Message Expiry Interval has passed.
#[test]
fn sent_qos2_message_does_not_expire_v5() {
    let mut c = connect(Protocol::V5);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let mut p = message("t", QoS::ExactlyOnce);
    p.properties.message_expiry_interval = Some(1);
    let sent_id = server.publish(p).unwrap().unwrap();
    let _ = sent(&mut server, now);
    let (now, mut server) = resume_server(Protocol::V5, server.into_session());
    let later = now + Duration::from_secs(60);
    let out = sent(&mut server, later);
    let resent = publishes(&out);
    assert_eq!(resent.len(), 1);
    assert_eq!((resent[0].packet_id, resent[0].dup), (Some(sent_id), true));
}

// MQTT-4.3.3-8 (v5)
// MQTT-4.3.3-2 (v311)
#[test]
fn receiver_sends_pubrec_with_the_identifier_once_it_owns_the_message() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        feed(
            &mut server,
            now,
            Packet::Publish(with_id(message("t", QoS::ExactlyOnce), 6)),
        )
        .unwrap();
        assert_eq!(
            sent(&mut server, now),
            [],
            "{v}: nothing before the application acks"
        );
        server.ack(id(6), ReasonCode::SUCCESS).unwrap();
        assert_eq!(
            sent(&mut server, now),
            [Packet::PubRec(Ack::new(id(6)))],
            "{v}"
        );
    }
}

// MQTT-4.3.3-9 (v5)
#[test]
fn after_an_error_pubrec_the_same_identifier_is_a_new_message_v5() {
    let (now, mut server) = server(Protocol::V5);
    let p = with_id(message("t", QoS::ExactlyOnce), 6);
    feed(&mut server, now, Packet::Publish(p.clone())).unwrap();
    server.ack(id(6), ReasonCode::QUOTA_EXCEEDED).unwrap();
    feed(&mut server, now, Packet::Publish(p)).unwrap();
    assert_eq!(messages(&mut server).len(), 2);
    let out = sent(&mut server, now);
    assert_eq!(
        out,
        [Packet::PubRec(Ack::with_code(
            id(6),
            ReasonCode::QUOTA_EXCEEDED
        ))]
    );
}

// MQTT-4.3.3-11 (v5)
#[test]
fn pubrel_is_answered_with_pubcomp_carrying_the_same_identifier_v5() {
    let (now, mut server) = server(Protocol::V5);
    feed(
        &mut server,
        now,
        Packet::Publish(with_id(message("t", QoS::ExactlyOnce), 6)),
    )
    .unwrap();
    server.ack(id(6), ReasonCode::SUCCESS).unwrap();
    let _ = sent(&mut server, now);
    feed(&mut server, now, Packet::PubRel(Ack::new(id(6)))).unwrap();
    assert_eq!(sent(&mut server, now), [Packet::PubComp(Ack::new(id(6)))]);
}

// MQTT-4.3.3-12 (v5)
#[test]
fn after_pubcomp_the_same_identifier_is_a_new_message_v5() {
    let (now, mut server) = server(Protocol::V5);
    let p = with_id(message("t", QoS::ExactlyOnce), 6);
    feed(&mut server, now, Packet::Publish(p.clone())).unwrap();
    server.ack(id(6), ReasonCode::SUCCESS).unwrap();
    feed(&mut server, now, Packet::PubRel(Ack::new(id(6)))).unwrap();
    feed(&mut server, now, Packet::Publish(p)).unwrap();
    assert_eq!(messages(&mut server).len(), 2);
}

// MQTT-4.4.0-2 (v5)
#[test]
fn publish_answered_with_an_error_code_is_not_retransmitted_v5() {
    let mut c = connect(Protocol::V5);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let a = server
        .publish(message("t", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    let b = server
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut server, now);
    feed(
        &mut server,
        now,
        Packet::PubAck(Ack::with_code(a, ReasonCode::QUOTA_EXCEEDED)),
    )
    .unwrap();
    feed(
        &mut server,
        now,
        Packet::PubRec(Ack::with_code(b, ReasonCode::QUOTA_EXCEEDED)),
    )
    .unwrap();
    assert_eq!(
        sent(&mut server, now),
        [],
        "no PUBREL after an error PUBREC"
    );
    let (now, mut server) = resume_server(Protocol::V5, server.into_session());
    let out = sent(&mut server, now);
    assert!(matches!(&out[..], [Packet::ConnAck(_)]), "{out:?}");
}

// MQTT-4.6.0-4
#[test]
fn pubrels_follow_the_order_of_the_pubrecs() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        let ids: Vec<_> = (0..3)
            .map(|_| {
                client
                    .publish(message("t", QoS::ExactlyOnce))
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let _ = sent(&mut client, now);
        for &p in [ids[2], ids[0], ids[1]].iter() {
            feed(&mut client, now, Packet::PubRec(Ack::new(p))).unwrap();
        }
        let order = sent(&mut client, now);
        let expected = [ids[2], ids[0], ids[1]].map(|p| Packet::PubRel(Ack::new(p)));
        assert_eq!(order, expected, "{v}");
    }
}

// MQTT-4.6.0-1 (v311)
// MQTT-2.3.1-3 (v311)
#[test]
fn resent_publishes_keep_their_order_and_identifiers_v311() {
    let mut c = connect(Protocol::V3_1_1);
    c.clean_start = false;
    let (now, mut server) = server_with(c, ConnAck::default(), SessionState::new());
    let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce];
    let ids: Vec<_> = qos
        .iter()
        .map(|&q| server.publish(message("t", q)).unwrap().unwrap())
        .collect();
    let _ = sent(&mut server, now);
    let (now, mut server) = resume_server(Protocol::V3_1_1, server.into_session());
    let out = sent(&mut server, now);
    let resent: Vec<_> = publishes(&out)
        .iter()
        .map(|p| (p.packet_id.unwrap(), p.dup))
        .collect();
    assert_eq!(resent, ids.iter().map(|&p| (p, true)).collect::<Vec<_>>());
}

// MQTT-4.6.0-2: PUBACK in the order the QoS 1 PUBLISH packets were received.
// MQTT-4.6.0-3: PUBREC in the order the QoS 2 PUBLISH packets were received.
#[test]
fn acknowledgements_leave_in_arrival_order_whatever_order_the_application_acks_in() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let qos = [QoS::AtLeastOnce, QoS::ExactlyOnce, QoS::AtLeastOnce];
        for (n, q) in (1..).zip(qos) {
            feed(
                &mut server,
                now,
                Packet::Publish(with_id(message("t", q), n)),
            )
            .unwrap();
        }
        assert_eq!(messages(&mut server).len(), 3);
        server.ack(id(3), ReasonCode::SUCCESS).unwrap();
        server.ack(id(2), ReasonCode::SUCCESS).unwrap();
        assert!(
            sent(&mut server, now).is_empty(),
            "{v}: held until #1 is acked"
        );
        server.ack(id(1), ReasonCode::SUCCESS).unwrap();
        let order: Vec<_> = sent(&mut server, now)
            .iter()
            .map(|p| match p {
                Packet::PubAck(a) => ("PUBACK", a.packet_id.get()),
                Packet::PubRec(a) => ("PUBREC", a.packet_id.get()),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(order, [("PUBACK", 1), ("PUBREC", 2), ("PUBACK", 3)], "{v}");
    }
}

// --- What a durable store is told ------------------------------------------

#[test]
fn the_first_pubrec_of_a_sent_message_is_reported_once() {
    let (now, mut server) = server(Protocol::V5);
    let p = server
        .publish(message("t", QoS::ExactlyOnce))
        .unwrap()
        .unwrap();
    let _ = sent(&mut server, now);
    feed(&mut server, now, Packet::PubRec(Ack::new(p))).unwrap();
    assert_eq!(events(&mut server), [Event::Received { packet_id: p }]);
    // A repeated PUBREC gets its PUBREL again, and no second report.
    feed(&mut server, now, Packet::PubRec(Ack::new(p))).unwrap();
    assert_eq!(sent(&mut server, now)[1..], [Packet::PubRel(Ack::new(p))]);
    assert_eq!(events(&mut server), []);
}

#[test]
fn a_pubrel_releasing_a_received_identifier_is_reported() {
    let (now, mut server) = server(Protocol::V3_1_1);
    feed(
        &mut server,
        now,
        Packet::Publish(with_id(message("t", QoS::ExactlyOnce), 6)),
    )
    .unwrap();
    let _ = messages(&mut server);
    server.ack(id(6), ReasonCode::SUCCESS).unwrap();
    feed(&mut server, now, Packet::PubRel(Ack::new(id(6)))).unwrap();
    assert_eq!(events(&mut server), [Event::Released { packet_id: id(6) }]);
    // An identifier never received is answered, not reported.
    feed(&mut server, now, Packet::PubRel(Ack::new(id(7)))).unwrap();
    assert_eq!(events(&mut server), []);
}

#[test]
fn a_restored_session_resends_as_it_was_and_numbers_on_from_its_last_identifier() {
    // The state a store kept: a QoS 2 message sent as 40, one released as
    // 41, and an incoming QoS 2 identifier 9 not yet released.
    let mut sent_as_40 = with_id(message("a", QoS::ExactlyOnce), 40);
    sent_as_40.dup = false;
    let session = SessionState::restore(
        vec![
            pigeon_proto::flow::Outbound::AwaitPubRec(sent_as_40),
            pigeon_proto::flow::Outbound::AwaitPubComp(id(41)),
        ],
        [9],
    );
    let (now, mut server) = resume_server(Protocol::V5, session);
    let out = sent(&mut server, now);
    let resent = publishes(&out)[0];
    assert_eq!((resent.packet_id, resent.dup), (Some(id(40)), true));
    assert_eq!(out.last(), Some(&Packet::PubRel(Ack::new(id(41)))));
    // 9 is still awaiting PUBREL: a resent PUBLISH is a duplicate.
    let mut dup = with_id(message("b", QoS::ExactlyOnce), 9);
    dup.dup = true;
    feed(&mut server, now, Packet::Publish(dup)).unwrap();
    assert_eq!(messages(&mut server), []);
    let next = server
        .publish(message("c", QoS::AtLeastOnce))
        .unwrap()
        .unwrap();
    assert_eq!(next, id(42));
}
