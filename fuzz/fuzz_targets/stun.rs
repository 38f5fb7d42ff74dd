//! The first thing every UDP datagram meets: the shard's STUN demultiplexing and USERNAME
//! routing (`sfu::stun`), then the peer's ICE-lite check handling (`sfu::ice_lite::IceLite`),
//! including the check responses `rtc`'s own agent is answered with.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sfu::ice_lite::{Credentials, IceLite};
use sfu::stun;

/// The credentials `seeds/stun/*` were signed with.
const SERVER_UFRAG: &str = "srvUfrag12345678";
const SERVER_PWD: &str = "server-password-0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let from = SocketAddr::from(([192, 0, 2, 7], 50_000));
    let stun = stun::is_stun(data);
    let success = stun::is_binding_success(data);
    assert!(!success || stun);
    let ufrag = stun::local_ufrag(data);
    assert!(ufrag.is_none() || stun);

    let mut ice = IceLite::new(
        Credentials {
            ufrag: SERVER_UFRAG.to_owned(),
            pwd: SERVER_PWD.to_owned(),
        },
        Credentials {
            ufrag: "cli1".to_owned(),
            pwd: "client-password-0123456789".to_owned(),
        },
    )
    .expect("crypto provider");
    if let Ok(answered) = ice.handle_check(Instant::now(), from, data) {
        assert!(stun::is_binding_success(&answered.response));
        assert!(ice.is_proven(from));
        assert_eq!(ufrag, Some(SERVER_UFRAG), "routing agrees with the check");
    }
    let _ = ice.rtc_ping_response(data, from);
});
