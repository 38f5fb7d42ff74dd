//! The STUN and TURN servers a joiner gets in `joined`, with TURN credentials made per join.
//!
//! A static TURN password handed to every browser is a password anyone in any call can copy
//! and use for ever. With a shared secret (coturn's `use-auth-secret`, the "TURN REST API"
//! convention of draft-uberti-behave-turn-rest) each join gets its own credential that the
//! TURN server checks without asking us: the username is `<expiry unix time>:<user id>` and
//! the password is base64(HMAC-SHA1(secret, username)). It stops working at the expiry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha1::Sha1;

use crate::protocol::{IceServer, UserId};

/// TURN servers that check credentials made from a secret they share with us.
#[derive(Debug, Clone)]
pub struct TurnRest {
    pub urls: Vec<String>,
    pub secret: SecretString,
    /// How long a credential can make new allocations. coturn checks the expiry when an
    /// allocation is made, not when it is refreshed, so a call outlives it.
    pub ttl: Duration,
}

impl TurnRest {
    /// The credential for `user` at `now`: (username, password).
    pub fn credential(&self, user: UserId, now: SystemTime) -> (String, String) {
        let expiry = now
            .checked_add(self.ttl)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let username = format!("{expiry}:{user}");
        // HMAC takes a key of any length; `new_from_slice` can't fail for it.
        let password = Hmac::<Sha1>::new_from_slice(self.secret.expose_secret().as_bytes())
            .map(|mut mac| {
                mac.update(username.as_bytes());
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            })
            .unwrap_or_default();
        (username, password)
    }
}

/// Every ICE server handed to joiners.
#[derive(Debug, Clone, Default)]
pub struct IceServers {
    /// STUN, and TURN with a fixed username and password.
    pub fixed: Vec<IceServer>,
    pub turn_rest: Option<TurnRest>,
}

impl IceServers {
    /// What `user` gets in `joined`: the fixed servers, and TURN with a fresh credential.
    pub fn for_user(&self, user: UserId, now: SystemTime) -> Vec<IceServer> {
        let mut servers = self.fixed.clone();
        if let Some(turn) = &self.turn_rest {
            let (username, credential) = turn.credential(user, now);
            servers.push(IceServer {
                urls: turn.urls.clone(),
                username: Some(username),
                credential: Some(credential),
            });
        }
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(secret: &str, ttl_secs: u64) -> TurnRest {
        TurnRest {
            urls: vec!["turn:turn.example.org:3478".to_owned()],
            secret: SecretString::from(secret.to_owned()),
            ttl: Duration::from_secs(ttl_secs),
        }
    }

    #[test]
    fn the_credential_follows_the_turn_rest_convention() {
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (username, password) = turn("north-wind", 86_400).credential(42, at);
        assert_eq!(username, "1700086400:42");
        // Computed independently: python3 -c "import hmac,hashlib,base64;
        // print(base64.b64encode(hmac.new(b'north-wind', b'1700086400:42', hashlib.sha1).digest()).decode())"
        assert_eq!(password, "wgdfIOd5d2/PXpJzfsIc/sTjtkg=");
    }

    #[test]
    fn each_user_gets_a_credential_of_their_own_after_the_fixed_servers() {
        let ice = IceServers {
            fixed: vec![IceServer {
                urls: vec!["stun:stun.example.org:3478".to_owned()],
                username: None,
                credential: None,
            }],
            turn_rest: Some(turn("s", 600)),
        };
        let now = SystemTime::now();
        let alice = ice.for_user(1, now);
        let bob = ice.for_user(2, now);
        assert_eq!(alice.len(), 2);
        assert_eq!(alice[0], ice.fixed[0]);
        assert_ne!(alice[1].credential, bob[1].credential);
        assert!(alice[1]
            .username
            .as_deref()
            .is_some_and(|u| u.ends_with(":1")));
    }
}
