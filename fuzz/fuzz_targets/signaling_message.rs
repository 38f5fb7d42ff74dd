//! A WebSocket text frame from a client: `signaling::protocol::parse_client_message`, as the
//! connection loop calls it on every frame under the size limit. Whatever parses must
//! serialize and parse back to the same message (the server echoes parts of it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::protocol::parse_client_message;

fuzz_target!(|data: &[u8]| {
    // Text frames are UTF-8 by the time they reach the parser (the WebSocket layer checks).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(message) = parse_client_message(text) {
        let json = serde_json::to_string(&message).expect("a parsed message serializes");
        let again = parse_client_message(&json).expect("a serialized message parses");
        assert_eq!(again, message, "round trip through {json}");
    }
});
