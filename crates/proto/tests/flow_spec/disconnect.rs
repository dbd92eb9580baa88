//! DISCONNECT and errors.

use super::*;

// --- DISCONNECT and errors -----------------------------------------------

// MQTT-3.14.4-1 (v5)
// MQTT-3.14.4-2 (v311)
#[test]
fn nothing_is_sent_after_disconnect() {
    for v in VERSIONS {
        let (now, mut client) = client(v);
        feed(
            &mut client,
            now,
            Packet::Publish(with_id(message("t", QoS::AtLeastOnce), 2)),
        )
        .unwrap();
        client.disconnect(ReasonCode::NORMAL_DISCONNECTION, Properties::default());
        assert!(client.publish(message("t", QoS::AtMostOnce)).is_err());
        assert!(client.send(Packet::Subscribe(subscribe(5))).is_err());
        client.ack(id(2), ReasonCode::SUCCESS).unwrap();
        assert_eq!(client.poll_timeout(), None, "{v}: no PINGREQ to come");
        let out = sent(&mut client, now);
        assert!(matches!(&out[..], [Packet::Disconnect(_)]), "{v}: {out:?}");
    }
}

// MQTT-3.14.4-2 (v5)
// MQTT-3.14.4-1 (v311)
#[test]
fn connection_is_closed_after_sending_disconnect() {
    for v in VERSIONS {
        let (_, mut client) = client(v);
        client.disconnect(ReasonCode::NORMAL_DISCONNECTION, Properties::default());
        assert!(client.is_closed(), "{v}");
    }
}

// MQTT-4.13.1-1 (v5)
// MQTT-4.8.0-1 (v311)
#[test]
fn protocol_violation_closes_the_connection() {
    for v in VERSIONS {
        let (now, mut server) = server(v);
        let err = feed(&mut server, now, Packet::PingResp).unwrap_err();
        assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
        assert!(server.is_closed(), "{v}");
        let (now, mut client) = client(v);
        let err = feed(&mut client, now, Packet::Subscribe(subscribe(1))).unwrap_err();
        assert_eq!(err.reason_code(), Some(ReasonCode::PROTOCOL_ERROR));
        assert!(client.is_closed(), "{v}");
        let out = sent(&mut client, now);
        match v {
            Protocol::V5 => assert!(
                matches!(&out[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::PROTOCOL_ERROR)
            ),
            _ => assert_eq!(out, [], "{v}: closed without a packet"),
        }
    }
}

// MQTT-3.14.0-1 (v5)
#[test]
fn server_sends_no_disconnect_before_its_connack_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect(Protocol::V5));
    server.disconnect(ReasonCode::UNSPECIFIED_ERROR, Properties::default());
    assert_eq!(sent(&mut server, now), []);
    let mut server = pending_server(now, connect(Protocol::V5));
    server.handle_decode_error(&Malformed::Truncated("test").into());
    assert!(server.is_closed());
    assert_eq!(sent(&mut server, now), []);
}

// MQTT-3.2.0-1
#[test]
fn server_cannot_send_suback_before_its_connack() {
    for v in VERSIONS {
        let now = Instant::now();
        let mut server = pending_server(now, connect(v));
        feed(&mut server, now, Packet::Subscribe(subscribe(1))).unwrap();
        let err = server.send(Packet::SubAck(suback(1))).unwrap_err();
        assert!(matches!(err, Misuse::InvalidState(_)), "{v}");
        assert_eq!(sent(&mut server, now), [], "{v}");
    }
}
