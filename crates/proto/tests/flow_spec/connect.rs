//! CONNECT and CONNACK.

use super::*;

// --- CONNECT and CONNACK -------------------------------------------------

// MQTT-3.1.4-5 (v5)
// MQTT-3.1.4-4 (v311)
#[test]
fn server_acknowledges_an_accepted_connect_with_a_success_connack() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        let refusal = ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..ConnAck::default()
        };
        let err = server
            .accept(now, refusal, SessionState::new())
            .unwrap_err();
        assert!(matches!(err, Error::Misuse(Misuse::InvalidState(_))));
        server
            .accept(now, ConnAck::default(), SessionState::new())
            .unwrap();
        let out = sent(&mut server, now);
        assert!(
            matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code == ReasonCode::SUCCESS),
            "{v}: {out:?}"
        );
    }
}

// MQTT-3.1.4-6 (v5)
// MQTT-3.1.4-5 (v311)
#[test]
fn refused_client_has_nothing_it_sent_after_connect_processed() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        let qos1 = with_id(message("t", QoS::AtLeastOnce), 1);
        feed(&mut server, now, Packet::Publish(qos1)).unwrap();
        feed(&mut server, now, Packet::Subscribe(subscribe(2))).unwrap();
        feed(&mut server, now, Packet::PingReq).unwrap();
        let refusal = ConnAck {
            reason_code: ReasonCode::NOT_AUTHORIZED,
            ..ConnAck::default()
        };
        server.refuse(refusal).unwrap();
        assert_eq!(events(&mut server), [], "{v}");
        let out = sent(&mut server, now);
        assert!(matches!(&out[..], [Packet::ConnAck(_)]), "{v}: {out:?}");
    }
}

// MQTT-3.2.0-1: packets that arrived with CONNECT are answered after it.
#[test]
fn server_sends_connack_before_any_other_packet() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        feed(&mut server, now, Packet::PingReq).unwrap();
        let qos1 = with_id(message("t", QoS::AtLeastOnce), 1);
        feed(&mut server, now, Packet::Publish(qos1)).unwrap();
        assert_eq!(
            sent(&mut server, now),
            [],
            "{v}: nothing before the decision"
        );
        server
            .accept(now, ConnAck::default(), SessionState::new())
            .unwrap();
        server.ack(id(1), ReasonCode::SUCCESS).unwrap();
        let kinds: Vec<_> = sent(&mut server, now)
            .iter()
            .map(|p| p.packet_type().name())
            .collect();
        assert_eq!(kinds, ["CONNACK", "PINGRESP", "PUBACK"], "{v}");
    }
}

// MQTT-3.2.0-2 (v5)
#[test]
fn server_sends_no_more_than_one_connack_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect(Protocol::V5));
    server
        .accept(now, ConnAck::default(), SessionState::new())
        .unwrap();
    let again = server.accept(now, ConnAck::default(), SessionState::new());
    assert!(matches!(again, Err(Error::Misuse(_))));
    let refusal = ConnAck {
        reason_code: ReasonCode::NOT_AUTHORIZED,
        ..ConnAck::default()
    };
    assert!(server.refuse(refusal).is_err());
    let connacks = sent(&mut server, now)
        .into_iter()
        .filter(|p| matches!(p, Packet::ConnAck(_)))
        .count();
    assert_eq!(connacks, 1);
    assert!(server.is_open());
}

// MQTT-3.2.2-4 (v5): a client that asked for a clean start has no session
// state, so a server claiming one is answered by closing.
#[test]
fn client_without_session_state_closes_on_session_present_v5() {
    let now = Instant::now();
    let mut client = Connection::client(
        now,
        Config::default(),
        connect(Protocol::V5),
        SessionState::new(),
    );
    let _ = sent(&mut client, now);
    let err = feed(&mut client, now, Packet::ConnAck(resumed())).unwrap_err();
    assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
    assert!(client.is_closed());
    assert!(!events(&mut client)
        .iter()
        .any(|e| matches!(e, Event::Connected(_))));
}

// MQTT-3.2.2-7 (v5)
// MQTT-3.2.2-5 (v311)
#[test]
fn server_closes_the_connection_after_a_refusing_connack() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        let refusal = ConnAck {
            reason_code: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            ..ConnAck::default()
        };
        server.refuse(refusal).unwrap();
        assert!(server.is_closed(), "{v}");
        let out = sent(&mut server, now);
        assert!(
            matches!(&out[..], [Packet::ConnAck(c)] if c.reason_code.is_error()),
            "{v}"
        );
        feed(&mut server, now, Packet::PingReq).unwrap();
        assert_eq!(sent(&mut server, now), [], "{v}: nothing after it");
    }
}

// MQTT-4.13.2-1 (v5): the client closes on a refusing CONNACK, and either
// side closes after a DISCONNECT with an error code, sent or received.
#[test]
fn error_code_in_connack_or_disconnect_closes_the_connection_v5() {
    let now = Instant::now();
    let mut refused = Connection::client(
        now,
        Config::default(),
        connect(Protocol::V5),
        SessionState::new(),
    );
    let refusal = ConnAck {
        reason_code: ReasonCode::SERVER_UNAVAILABLE,
        ..ConnAck::default()
    };
    feed(&mut refused, now, Packet::ConnAck(refusal)).unwrap();
    assert!(refused.is_closed());
    assert!(matches!(events(&mut refused)[..], [Event::Refused(_)]));

    let (_, mut client) = client(Protocol::V5);
    client.disconnect(ReasonCode::UNSPECIFIED_ERROR, Properties::default());
    assert!(client.is_closed());

    let (now, mut server) = server(Protocol::V5);
    let d = Disconnect::new(ReasonCode::UNSPECIFIED_ERROR);
    feed(&mut server, now, Packet::Disconnect(d)).unwrap();
    assert!(server.is_closed());
}

// MQTT-3.2.2-11 (v5)
#[test]
fn client_does_not_publish_above_the_servers_maximum_qos_v5() {
    let mut connack = ConnAck::default();
    connack.properties.maximum_qos = Some(QoS::AtMostOnce);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let err = client.publish(message("t", qos)).unwrap_err();
        assert!(matches!(err, Error::Misuse(Misuse::InvalidValue(_))));
    }
    assert_eq!(sent(&mut client, now), []);
    assert!(client.session().is_empty());
}

// MQTT-3.2.2-14 (v5)
#[test]
fn client_does_not_publish_retained_when_the_server_has_no_retain_v5() {
    let mut connack = ConnAck::default();
    connack.properties.retain_available = Some(false);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let mut retained = message("t", QoS::AtMostOnce);
    retained.retain = true;
    let err = client.publish(retained).unwrap_err();
    assert!(matches!(err, Error::Misuse(Misuse::InvalidValue(_))));
    assert_eq!(sent(&mut client, now), []);
}

// MQTT-3.2.2-15 (v5)
#[test]
fn client_does_not_send_a_publish_over_the_servers_maximum_packet_size_v5() {
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = Some(32);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let mut big = message("t", QoS::AtMostOnce);
    big.payload = vec![0u8; 40].into();
    let err = client.publish(big).unwrap_err();
    assert!(matches!(
        err,
        Error::Misuse(Misuse::ExceedsPeerMaximum { max: 32, .. })
    ));
    assert_eq!(sent(&mut client, now), []);
}
