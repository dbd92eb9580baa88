//! Arbitrary bytes into the streaming decoder, under every protocol
//! version: it may refuse them, but never panic, and it never consumes a
//! packet it then reports as incomplete.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pigeon_proto::{decode, Protocol};

fuzz_target!(|data: &[u8]| {
    for protocol in [Protocol::V3_1, Protocol::V3_1_1, Protocol::V5] {
        let mut buf = BytesMut::from(data);
        loop {
            let before = buf.len();
            match decode(&mut buf, protocol, 64 * 1024) {
                Ok(Some(_)) => assert!(buf.len() < before, "a packet consumes bytes"),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "an incomplete packet is left in place");
                    break;
                }
                Err(_) => break,
            }
        }
    }
});
