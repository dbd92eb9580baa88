//! Enhanced authentication.

use super::*;

// --- Enhanced authentication ---------------------------------------------

// MQTT-3.1.2-30 (v5)
#[test]
fn client_doing_enhanced_authentication_sends_only_auth_before_connack_v5() {
    let now = Instant::now();
    let c = connect_with_auth("SCRAM-SHA-1");
    let mut client = Connection::client(now, Config::default(), c, SessionState::new());
    let err = client.send(Packet::Subscribe(subscribe(1))).unwrap_err();
    assert!(matches!(err, Misuse::InvalidState(_)));
    client.send(auth(Some("SCRAM-SHA-1"))).unwrap();
    let kinds: Vec<_> = sent(&mut client, now)
        .iter()
        .map(|p| p.packet_type().name())
        .collect();
    assert_eq!(kinds, ["CONNECT", "AUTH"]);
}

// MQTT-4.12.0-5 (v5)
#[test]
fn auth_and_connack_carry_the_connects_authentication_method_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect_with_auth("SCRAM-SHA-1"));
    assert!(server.send(auth(Some("GS2-KRB5"))).is_err());
    assert!(server.send(auth(None)).is_err());
    server.send(auth(Some("SCRAM-SHA-1"))).unwrap();
    let bare = server.accept(now, ConnAck::default(), SessionState::new());
    assert!(matches!(bare, Err(Error::Misuse(_))));
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    server.accept(now, connack, SessionState::new()).unwrap();
    let out = sent(&mut server, now);
    assert!(
        matches!(&out[..], [Packet::Auth(_), Packet::ConnAck(_)]),
        "{out:?}"
    );
}

// MQTT-4.12.0-6 (v5)
#[test]
fn server_sends_no_auth_or_method_to_a_client_that_named_none_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect(Protocol::V5));
    assert!(server.send(auth(Some("SCRAM-SHA-1"))).is_err());
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    assert!(server.accept(now, connack, SessionState::new()).is_err());
    assert_eq!(sent(&mut server, now), []);
}

// MQTT-4.12.0-7 (v5)
#[test]
fn client_that_named_no_authentication_method_sends_no_auth_v5() {
    let (now, mut client) = client(Protocol::V5);
    assert!(client.send(auth(Some("SCRAM-SHA-1"))).is_err());
    assert!(client.send(auth(None)).is_err());
    assert_eq!(sent(&mut client, now), []);
}

// MQTT-4.12.1-1 (v5)
#[test]
fn reauthentication_names_the_original_authentication_method_v5() {
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    let (now, mut client) = client_with(connect_with_auth("SCRAM-SHA-1"), connack);
    let mut other = Disconnect::new(ReasonCode::RE_AUTHENTICATE);
    other.properties.authentication_method = Some("GS2-KRB5".try_into().unwrap());
    assert!(client.send(Packet::Auth(other.clone())).is_err());
    other.properties.authentication_method = Some("SCRAM-SHA-1".try_into().unwrap());
    client.send(Packet::Auth(other)).unwrap();
    assert!(matches!(&sent(&mut client, now)[..], [Packet::Auth(_)]));
}

// MQTT-4.12.0-3 (v5)
#[test]
fn server_hears_the_clients_auth_while_connect_is_pending_v5() {
    let now = Instant::now();
    let mut server = pending_server(now, connect_with_auth("SCRAM-SHA-256"));
    server.send(auth(Some("SCRAM-SHA-256"))).unwrap();
    feed(&mut server, now, auth(Some("SCRAM-SHA-256"))).unwrap();
    assert!(
        matches!(&events(&mut server)[..], [Event::Auth(a)] if a.reason_code == ReasonCode::CONTINUE_AUTHENTICATION)
    );
    // Anything but Continue before CONNACK is a protocol error.
    let Packet::Auth(mut reauth) = auth(Some("SCRAM-SHA-256")) else {
        unreachable!()
    };
    reauth.reason_code = ReasonCode::RE_AUTHENTICATE;
    assert!(feed(&mut server, now, Packet::Auth(reauth)).is_err());
    assert!(server.is_closed());
}

// MQTT-4.12.0-7, MQTT-4.12.0-5 (v5)
#[test]
fn server_refuses_auth_without_or_with_another_method_v5() {
    // Without a method in CONNECT: a protocol error, DISCONNECT 0x82.
    let (now, mut server) = server_with(
        connect(Protocol::V5),
        ConnAck::default(),
        SessionState::new(),
    );
    assert!(feed(&mut server, now, auth(Some("SCRAM-SHA-256"))).is_err());
    let out = sent(&mut server, now);
    assert!(
        matches!(&out[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::PROTOCOL_ERROR),
        "{out:?}"
    );
    // Another method than CONNECT's, once connected.
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-256".try_into().unwrap());
    let (now, mut server) = server_with(
        connect_with_auth("SCRAM-SHA-256"),
        connack,
        SessionState::new(),
    );
    assert!(feed(&mut server, now, auth(Some("PLAIN"))).is_err());
}

// MQTT-4.12.1-1 (v5)
#[test]
fn server_hears_a_reauthentication_once_connected_v5() {
    let mut connack = ConnAck::default();
    connack.properties.authentication_method = Some("SCRAM-SHA-256".try_into().unwrap());
    let (now, mut server) = server_with(
        connect_with_auth("SCRAM-SHA-256"),
        connack,
        SessionState::new(),
    );
    let Packet::Auth(mut reauth) = auth(Some("SCRAM-SHA-256")) else {
        unreachable!()
    };
    reauth.reason_code = ReasonCode::RE_AUTHENTICATE;
    feed(&mut server, now, Packet::Auth(reauth)).unwrap();
    assert!(
        matches!(&events(&mut server)[..], [Event::Auth(a)] if a.reason_code == ReasonCode::RE_AUTHENTICATE)
    );
    let mut success = Disconnect::new(ReasonCode::SUCCESS);
    success.properties.authentication_method = Some("SCRAM-SHA-256".try_into().unwrap());
    server.send(Packet::Auth(success)).unwrap();
    assert!(matches!(&sent(&mut server, now)[..], [Packet::Auth(_)]));
}
