//! Every packet that decodes encodes again, and decoding that encoding gives
//! the same packet (packets are compared, not bytes: the decoder accepts
//! some encodings the encoder never produces, such as properties in another
//! order).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pigeon_proto::{decode, Packet, Protocol};

fuzz_target!(|data: &[u8]| {
    for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = decode(&mut buf, protocol, u32::MAX) {
            let version = match &packet {
                Packet::Connect(c) => c.protocol,
                _ => protocol,
            };
            let mut out = BytesMut::new();
            packet
                .encode(version, &mut out)
                .expect("a decoded packet encodes");
            let again = decode(&mut out, version, u32::MAX)
                .expect("our encoding decodes")
                .expect("our encoding is whole");
            assert_eq!(packet, again);
            assert!(out.is_empty(), "no bytes left over");
        }
    }
});
