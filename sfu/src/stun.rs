//! Just enough STUN parsing to route a datagram: is it STUN, and whose ufrag does it name.

/// RFC 7983 demultiplexing: STUN messages start with a byte in 0..=3.
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20 && data[0] <= 3 && data[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

/// A Binding success response (type 0x0101): what an ICE agent sends only after a check
/// passed its message-integrity test.
pub fn is_binding_success(data: &[u8]) -> bool {
    is_stun(data) && data[0] == 0x01 && data[1] == 0x01
}

/// A Binding request (type 0x0001): an ICE connectivity check.
pub fn is_binding_request(data: &[u8]) -> bool {
    is_stun(data) && data[0] == 0x00 && data[1] == 0x01
}

/// The local (server) part of the USERNAME attribute, `server_ufrag:client_ufrag`.
pub fn local_ufrag(data: &[u8]) -> Option<&str> {
    const USERNAME: u16 = 0x0006;
    if !is_stun(data) {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(20..20 + length)?;
    let mut rest = body;
    while rest.len() >= 4 {
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let value = rest.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split(':').next();
        }
        let padded = 4 + len.div_ceil(4) * 4;
        rest = rest.get(padded..)?;
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn binding_request(username: &str) -> Vec<u8> {
        let mut attr = Vec::new();
        attr.extend_from_slice(&0x0006u16.to_be_bytes());
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        // A second attribute after USERNAME, as real requests have.
        attr.extend_from_slice(&[0x80, 0x28, 0, 4, 1, 2, 3, 4]);
        let mut msg = vec![0x00, 0x01];
        msg.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        msg.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        msg.extend_from_slice(&[7; 12]);
        msg.extend_from_slice(&attr);
        msg
    }

    #[test]
    fn the_server_ufrag_is_read_from_a_binding_request() {
        let msg = binding_request("srvUfrag123:cli9");
        assert!(is_stun(&msg));
        assert!(!is_binding_success(&msg));
        assert!(is_binding_request(&msg));
        assert_eq!(local_ufrag(&msg), Some("srvUfrag123"));
    }

    #[test]
    fn truncated_and_non_stun_datagrams_yield_nothing() {
        let msg = binding_request("abc:def");
        assert_eq!(local_ufrag(&msg[..msg.len() - 10]), None);
        assert_eq!(local_ufrag(&[0x80, 0x60, 0, 0]), None, "RTP");
        assert_eq!(local_ufrag(&[22; 40]), None, "DTLS");
        assert!(!is_stun(&[]));
    }
}
