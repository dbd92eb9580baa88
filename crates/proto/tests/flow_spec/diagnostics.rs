//! Reason String and User Properties.

use super::*;

// --- Reason String and User Properties -----------------------------------

/// Properties with a Reason String and a User Property of about 60 bytes.
fn chatty() -> Properties {
    let mut p = Properties::default();
    p.reason_string = Some("x".repeat(30).as_str().try_into().unwrap());
    p.user_properties.push((
        "k".try_into().unwrap(),
        "v".repeat(20).as_str().try_into().unwrap(),
    ));
    p
}

/// A v5 server whose client announced a Maximum Packet Size of `max` and
/// has a SUBSCRIBE 1 and an UNSUBSCRIBE 2 awaiting answers.
fn server_for_small_client(max: u32) -> (Instant, Connection) {
    let mut c = connect(Protocol::V5);
    c.properties.maximum_packet_size = Some(max);
    server_with(c, ConnAck::default(), SessionState::new())
}

/// The Reason String and User Properties of `packet`, as received.
fn diagnostics_of(packet: &Packet) -> (bool, usize) {
    let p = packet.properties().unwrap();
    (p.reason_string.is_some(), p.user_properties.len())
}

// MQTT-3.2.2-19 (v5)
// MQTT-3.2.2-20 (v5)
#[test]
fn connack_leaves_out_diagnostics_that_would_exceed_the_clients_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let now = Instant::now();
        let mut c = connect(Protocol::V5);
        c.properties.maximum_packet_size = Some(max);
        let mut server = pending_server(now, c);
        let connack = ConnAck {
            properties: chatty().into(),
            ..ConnAck::default()
        };
        server.accept(now, connack, SessionState::new()).unwrap();
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
        assert!(out[0].encoded_len(Protocol::V5) <= max as usize);
    }
}

// MQTT-3.9.2-1 (v5)
// MQTT-3.9.2-2 (v5)
#[test]
fn suback_leaves_out_diagnostics_that_would_exceed_the_clients_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let (now, mut server) = server_for_small_client(max);
        let mut answer = suback(1);
        answer.properties = chatty().into();
        server.send(Packet::SubAck(answer)).unwrap();
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.11.2-1 (v5)
// MQTT-3.11.2-2 (v5)
#[test]
fn unsuback_leaves_out_diagnostics_that_would_exceed_the_clients_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let (now, mut server) = server_for_small_client(max);
        let mut answer = suback(2);
        answer.properties = chatty().into();
        server.send(Packet::UnsubAck(answer)).unwrap();
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.14.2-3 (v5)
// MQTT-3.14.2-4 (v5)
#[test]
fn disconnect_leaves_out_diagnostics_that_would_exceed_the_peers_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let (now, mut server) = server_for_small_client(max);
        server.disconnect(ReasonCode::SERVER_SHUTTING_DOWN, chatty());
        let out = sent(&mut server, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.15.2-2 (v5)
// MQTT-3.15.2-3 (v5)
#[test]
fn auth_leaves_out_diagnostics_that_would_exceed_the_peers_maximum_v5() {
    for (max, kept) in [(40, (false, 0)), (1000, (true, 1))] {
        let mut connack = ConnAck::default();
        connack.properties.maximum_packet_size = Some(max);
        connack.properties.authentication_method = Some("M".try_into().unwrap());
        let (now, mut client) = client_with(connect_with_auth("M"), connack);
        let Packet::Auth(mut reauth) = auth(Some("M")) else {
            unreachable!()
        };
        reauth.properties.reason_string = chatty().reason_string;
        reauth.properties.user_properties = chatty().user_properties;
        client.send(Packet::Auth(reauth)).unwrap();
        let out = sent(&mut client, now);
        assert_eq!(diagnostics_of(&out[0]), kept, "max {max}");
    }
}

// MQTT-3.2.2-15 (v5)
#[test]
fn client_does_not_send_a_subscribe_over_the_servers_maximum_packet_size_v5() {
    let mut connack = ConnAck::default();
    connack.properties.maximum_packet_size = Some(16);
    let (now, mut client) = client_with(connect(Protocol::V5), connack);
    let mut big = subscribe(1);
    big.filters[0].filter = "a/very/long/topic/filter/#".try_into().unwrap();
    let err = client.send(Packet::Subscribe(big)).unwrap_err();
    assert!(matches!(err, Misuse::ExceedsPeerMaximum { max: 16, .. }));
    assert_eq!(sent(&mut client, now), []);
}

// MQTT-3.1.2-29 (v5)
#[test]
fn without_problem_information_the_server_keeps_diagnostics_to_connack_disconnect_and_publish_v5() {
    let mut c = connect(Protocol::V5);
    c.properties.request_problem_information = Some(false);
    let now = Instant::now();
    let mut server = pending_server(now, c);
    let connack = ConnAck {
        properties: chatty().into(),
        ..ConnAck::default()
    };
    server.accept(now, connack, SessionState::new()).unwrap();
    let mut answer = suback(1);
    answer.properties = chatty().into();
    server.send(Packet::SubAck(answer)).unwrap();
    let mut p = message("t", QoS::AtMostOnce);
    p.properties.user_properties = chatty().user_properties;
    server.publish(p).unwrap();
    server.disconnect(ReasonCode::SERVER_SHUTTING_DOWN, chatty());
    let out = sent(&mut server, now);
    let seen: Vec<_> = out.iter().map(diagnostics_of).collect();
    assert_eq!(seen, [(true, 1), (false, 0), (false, 1), (true, 1)]);
}
