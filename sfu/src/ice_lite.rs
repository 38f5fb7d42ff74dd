//! The server's half of ICE, answered by the SFU itself: a lite agent (RFC 8445 §2.5, §7.3).
//!
//! Why not `rtc`'s agent: in `rtc-ice` 0.21.1 a controlled agent answers a USE-CANDIDATE
//! check on a pair it has not yet proven with a triggered check only (no success response),
//! so Firefox, which nominates on its first checks toward a lite peer, never connects; and it
//! keeps the first nominated pair for good and judges liveness by that pair's remote address
//! alone, so when Chromium moves to another pair the server declares the peer disconnected
//! 5 s later while media still flows (docs/sfu.md has the whole story and the upstream report).
//!
//! What a lite agent must do, and all this module does:
//! - answer every check that names our ufrag and passes MESSAGE-INTEGRITY (our password) and
//!   FINGERPRINT with a success response carrying XOR-MAPPED-ADDRESS; send no checks at all;
//! - send media where the client nominated (the latest USE-CANDIDATE wins, so a client that
//!   renominates or moves to another pair is followed), or where its media now comes from;
//! - accept non-STUN datagrams only from addresses that proved themselves with a check;
//! - call the client alive while anything authenticated arrives from it.
//!
//! `rtc` still runs DTLS and SRTP, and its ICE transport must believe it is connected for
//! them to pass: [`IceLite::rtc_check`] and [`IceLite::rtc_ping_response`] play a well-behaved
//! controlling client toward it (see `peer.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc::crypto::{default_provider, RTCCryptoProvider};
use rtc::ice::attributes::control::AttrControlling;
use rtc::ice::attributes::priority::PriorityAttr;
use rtc::ice::attributes::use_candidate::UseCandidateAttr;
use rtc::stun::attributes::{ATTR_USERNAME, ATTR_USE_CANDIDATE};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    Message, Setter, TransactionId, BINDING_REQUEST, BINDING_SUCCESS, CLASS_REQUEST, METHOD_BINDING,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;

/// An ICE username fragment and password (one side's).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub ufrag: String,
    pub pwd: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password authenticates checks: keep it out of logs.
        f.debug_struct("Credentials")
            .field("ufrag", &self.ufrag)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The first `a=ice-ufrag` and `a=ice-pwd` of an SDP. Browsers bundle every m-line on one
    /// transport, so the first pair is the one that counts.
    pub fn from_sdp(sdp: &str) -> Option<Self> {
        let attr = |name: &str| {
            sdp.lines()
                .find_map(|l| l.trim_end().strip_prefix(name))
                .map(str::to_owned)
        };
        Some(Self {
            ufrag: attr("a=ice-ufrag:")?,
            pwd: attr("a=ice-pwd:")?,
        })
    }
}

/// Why a datagram that looked like STUN was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("not a STUN binding request")]
    NotBindingRequest,
    #[error("malformed STUN message")]
    Malformed,
    #[error("USERNAME does not name this connection")]
    WrongUsername,
    #[error("MESSAGE-INTEGRITY or FINGERPRINT does not match")]
    NotAuthentic,
    #[error("STUN message could not be built: {0}")]
    Build(String),
}

/// A check that passed: the response to send back to where it came from.
#[derive(Debug)]
pub struct Answered {
    pub response: Vec<u8>,
    /// The client nominated this address (USE-CANDIDATE).
    pub nominated: bool,
    /// The path changed to this address.
    pub moved: bool,
    /// An older proven address forgotten to make room (its route should go too).
    pub forgotten: Option<SocketAddr>,
}

/// Addresses that proved themselves kept per peer: host, reflexive and relayed candidates of
/// one client over IPv4 and IPv6 fit easily; older ones are forgotten first.
const MAX_PROVEN: usize = 8;

pub struct IceLite {
    local: Credentials,
    remote: Credentials,
    crypto: Arc<dyn RTCCryptoProvider>,
    tie_breaker: u64,
    /// Addresses that passed a check, most recently proven last.
    proven: Vec<SocketAddr>,
    /// Where the client is now: our media goes there.
    path: Option<SocketAddr>,
    last_heard: Option<Instant>,
}

impl std::fmt::Debug for IceLite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceLite")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("path", &self.path)
            .field("proven", &self.proven)
            .finish_non_exhaustive()
    }
}

fn build(setters: &[Box<dyn Setter + '_>]) -> Result<Vec<u8>, CheckError> {
    let mut msg = Message::new();
    msg.build(setters)
        .map_err(|e| CheckError::Build(e.to_string()))?;
    Ok(msg.raw)
}

fn decode(data: &[u8]) -> Result<Message, CheckError> {
    let mut msg = Message {
        raw: data.to_vec(),
        ..Message::default()
    };
    msg.decode().map_err(|_| CheckError::Malformed)?;
    Ok(msg)
}

impl IceLite {
    /// # Errors
    /// [`CheckError::Build`] when no crypto provider is available.
    pub fn new(local: Credentials, remote: Credentials) -> Result<Self, CheckError> {
        let crypto = default_provider().map_err(|e| CheckError::Build(e.to_string()))?;
        Ok(Self {
            local,
            remote,
            crypto,
            tie_breaker: rand::random(),
            proven: Vec::new(),
            path: None,
            last_heard: None,
        })
    }

    pub fn local(&self) -> &Credentials {
        &self.local
    }

    pub fn remote(&self) -> &Credentials {
        &self.remote
    }

    /// The client restarted ICE (new ufrag and password in a new offer). Addresses it proved
    /// with the old credentials stay usable: media keeps flowing on the old path until the
    /// client moves.
    pub fn set_remote(&mut self, remote: Credentials) {
        self.remote = remote;
    }

    /// Where our media goes: the client's nominated (or latest) path.
    pub fn path(&self) -> Option<SocketAddr> {
        self.path
    }

    /// When anything authenticated last arrived from the client.
    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    pub fn is_proven(&self, addr: SocketAddr) -> bool {
        self.proven.contains(&addr)
    }

    /// Answers a connectivity check from `from`.
    ///
    /// # Errors
    /// [`CheckError`] when it is not a binding request for this connection with valid
    /// integrity; such a datagram is dropped unanswered (a lite agent owes it nothing).
    pub fn handle_check(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<Answered, CheckError> {
        let mut msg = decode(data)?;
        if msg.typ.method != METHOD_BINDING || msg.typ.class != CLASS_REQUEST {
            return Err(CheckError::NotBindingRequest);
        }
        let username =
            TextAttribute::get_from_as(&msg, ATTR_USERNAME).map_err(|_| CheckError::Malformed)?;
        // `ours:theirs`. Their half changes with an ICE restart and a check for the new
        // generation may race the offer that announces it, so only ours must match: the
        // password proves the rest.
        if username.text.split(':').next() != Some(self.local.ufrag.as_str()) {
            return Err(CheckError::WrongUsername);
        }
        FINGERPRINT
            .check(&msg)
            .map_err(|_| CheckError::NotAuthentic)?;
        MessageIntegrity::check(&mut msg, self.local.pwd.as_bytes(), self.crypto.crypto())
            .map_err(|_| CheckError::NotAuthentic)?;

        let nominated = msg.contains(ATTR_USE_CANDIDATE);
        let response = self.success_response(msg.transaction_id, from, &self.local.pwd)?;
        let forgotten = self.prove(from);
        self.last_heard = Some(now);
        let moved = (nominated || self.path.is_none()) && self.path != Some(from);
        if nominated || self.path.is_none() {
            self.path = Some(from);
        }
        Ok(Answered {
            response,
            nominated,
            moved,
            forgotten,
        })
    }

    /// A non-STUN datagram (DTLS, SRTP, SRTCP) from `from`: accepted only from a proven
    /// address. The client sends media on the path it selected, so that is where ours goes.
    /// Returns whether to accept it.
    pub fn handle_media(&mut self, now: Instant, from: SocketAddr) -> bool {
        if !self.is_proven(from) {
            return false;
        }
        self.last_heard = Some(now);
        if self.path != Some(from) {
            tracing::debug!(%from, "client media moved");
            self.path = Some(from);
        }
        true
    }

    /// Marks `addr` proven (most recent last); returns the address forgotten to make room.
    fn prove(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        let mut forgotten = None;
        if let Some(i) = self.proven.iter().position(|a| *a == addr) {
            self.proven.remove(i);
        } else if self.proven.len() == MAX_PROVEN {
            let oldest = self.proven.remove(0);
            // The path never points at a forgotten address: media there would be refused.
            if self.path == Some(oldest) {
                self.path = Some(addr);
            }
            forgotten = Some(oldest);
        }
        self.proven.push(addr);
        forgotten
    }

    // ---- the well-behaved client that `rtc`'s own ICE agent is shown ----

    /// A check as the client would send it, for `rtc`'s agent: authenticated with our
    /// password, optionally nominating.
    ///
    /// # Errors
    /// [`CheckError::Build`] if the message can't be built.
    pub fn rtc_check(&self, nominate: bool) -> Result<Vec<u8>, CheckError> {
        let username = format!("{}:{}", self.local.ufrag, self.remote.ufrag);
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username)),
            Box::new(AttrControlling(self.tie_breaker)),
            // Host candidate priority: the value doesn't matter to a lite agent.
            Box::new(PriorityAttr(2_130_706_431)),
        ];
        if nominate {
            setters.push(Box::<UseCandidateAttr>::default());
        }
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(
                self.local.pwd.clone(),
                self.crypto.crypto(),
            ),
        ));
        setters.push(Box::new(FINGERPRINT));
        build(&setters)
    }

    /// The success response the client would give to a check `rtc`'s agent sent: the same
    /// transaction, authenticated with the client's password. `None` if `ping` is not a
    /// binding request.
    ///
    /// # Errors
    /// [`CheckError::Build`] if the message can't be built.
    pub fn rtc_ping_response(
        &self,
        ping: &[u8],
        mapped: SocketAddr,
    ) -> Result<Option<Vec<u8>>, CheckError> {
        let Ok(msg) = decode(ping) else {
            return Ok(None);
        };
        if msg.typ.method != METHOD_BINDING || msg.typ.class != CLASS_REQUEST {
            return Ok(None);
        }
        self.success_response(msg.transaction_id, mapped, &self.remote.pwd)
            .map(Some)
    }

    /// A Binding success response for `transaction`, telling the sender it was seen at
    /// `mapped`, authenticated with `pwd` (the password the request was signed with).
    fn success_response(
        &self,
        transaction: TransactionId,
        mapped: SocketAddr,
        pwd: &str,
    ) -> Result<Vec<u8>, CheckError> {
        build(&[
            Box::new(BINDING_SUCCESS),
            Box::new(transaction),
            Box::new(XorMappedAddress {
                ip: mapped.ip(),
                port: mapped.port(),
            }),
            Box::new(MessageIntegrity::new_short_term_integrity_with_provider(
                pwd.to_owned(),
                self.crypto.crypto(),
            )),
            Box::new(FINGERPRINT),
        ])
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn creds(ufrag: &str, pwd: &str) -> Credentials {
        Credentials {
            ufrag: ufrag.to_owned(),
            pwd: pwd.to_owned(),
        }
    }

    fn server() -> IceLite {
        IceLite::new(
            creds("srvUfrag12345678", "server-password-0123456789abcdef"),
            creds("cli1", "client-password-0123456789"),
        )
        .expect("crypto")
    }

    /// A check as a browser sends it: USERNAME `server:client`, signed with the server's
    /// password.
    fn browser_check(ice: &IceLite, nominate: bool, pwd: &str) -> Vec<u8> {
        check_for(&ice.local.ufrag, &ice.remote.ufrag, pwd, nominate)
    }

    /// A browser's check toward server ufrag `server` from client ufrag `client`, signed with
    /// `pwd`.
    pub(crate) fn check_for(server: &str, client: &str, pwd: &str, nominate: bool) -> Vec<u8> {
        let crypto = default_provider().expect("crypto");
        let mut setters: Vec<Box<dyn Setter + '_>> = vec![
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(
                ATTR_USERNAME,
                format!("{server}:{client}"),
            )),
            Box::new(AttrControlling(7)),
            Box::new(PriorityAttr(1)),
        ];
        if nominate {
            setters.push(Box::<UseCandidateAttr>::default());
        }
        setters.push(Box::new(
            MessageIntegrity::new_short_term_integrity_with_provider(
                pwd.to_owned(),
                crypto.crypto(),
            ),
        ));
        setters.push(Box::new(FINGERPRINT));
        build(&setters).expect("check")
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn credentials_are_read_from_the_first_ice_attributes_of_an_offer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\na=ice-ufrag:zzzz\r\n";
        let c = Credentials::from_sdp(sdp).expect("credentials");
        assert_eq!(c.ufrag, "abcd");
        assert_eq!(c.pwd, "0123456789012345678901");
        assert!(Credentials::from_sdp("v=0\r\n").is_none());
    }

    #[test]
    fn a_nominating_first_check_is_answered_with_success_and_sets_the_path() {
        // Firefox's first check toward a lite peer already nominates: it must get a success
        // response, not a check of our own.
        let mut ice = server();
        let now = Instant::now();
        let check = browser_check(&ice, true, "server-password-0123456789abcdef");
        let answered = ice.handle_check(now, addr(5000), &check).expect("answered");
        assert!(answered.nominated);
        let mut response = decode(&answered.response).expect("response");
        assert_eq!(response.typ, BINDING_SUCCESS);
        assert_eq!(
            response.transaction_id,
            decode(&check).expect("check").transaction_id
        );
        let mut mapped = XorMappedAddress::default();
        mapped
            .get_from_as(&response, rtc::stun::attributes::ATTR_XORMAPPED_ADDRESS)
            .expect("xor-mapped-address");
        assert_eq!(SocketAddr::new(mapped.ip, mapped.port), addr(5000));
        let crypto = default_provider().expect("crypto");
        MessageIntegrity::check(
            &mut response,
            b"server-password-0123456789abcdef",
            crypto.crypto(),
        )
        .expect("signed with our password");
        assert_eq!(ice.path(), Some(addr(5000)));
        assert_eq!(ice.last_heard(), Some(now));
    }

    #[test]
    fn the_latest_nomination_moves_the_path_and_plain_checks_do_not() {
        let mut ice = server();
        let now = Instant::now();
        let pwd = "server-password-0123456789abcdef";
        ice.handle_check(now, addr(5000), &browser_check(&ice, true, pwd))
            .expect("first");
        // A keepalive on another pair the client does not use: answered, path unchanged.
        let plain = ice
            .handle_check(now, addr(6000), &browser_check(&ice, false, pwd))
            .expect("plain");
        assert!(!plain.moved);
        assert_eq!(ice.path(), Some(addr(5000)));
        // The client switches its selected pair and nominates it: we follow.
        let moved = ice
            .handle_check(now, addr(6000), &browser_check(&ice, true, pwd))
            .expect("renominated");
        assert!(moved.moved);
        assert_eq!(ice.path(), Some(addr(6000)));
        // Media arriving on the first (proven) path moves it back: the client sends on the
        // pair it selected.
        assert!(ice.handle_media(now, addr(5000)));
        assert_eq!(ice.path(), Some(addr(5000)));
    }

    #[test]
    fn checks_with_a_wrong_password_or_username_and_media_from_strangers_are_refused() {
        let mut ice = server();
        let now = Instant::now();
        let forged = browser_check(&ice, true, "not-the-server-password-at-all!!");
        assert_eq!(
            ice.handle_check(now, addr(5000), &forged).err(),
            Some(CheckError::NotAuthentic)
        );
        let mut other = server();
        other.local.ufrag = "someoneElse12345".to_owned();
        let misaddressed = browser_check(&other, true, "server-password-0123456789abcdef");
        assert_eq!(
            ice.handle_check(now, addr(5000), &misaddressed).err(),
            Some(CheckError::WrongUsername)
        );
        let mut tampered = browser_check(&ice, false, "server-password-0123456789abcdef");
        let last = tampered.len() - 1;
        tampered[last] ^= 0xff;
        assert_eq!(
            ice.handle_check(now, addr(5000), &tampered).err(),
            Some(CheckError::NotAuthentic)
        );
        assert_eq!(
            ice.handle_check(now, addr(5000), &[0u8; 7]).err(),
            Some(CheckError::Malformed)
        );
        assert!(!ice.handle_media(now, addr(5000)), "no check, no media");
        assert_eq!(ice.path(), None);
        assert_eq!(ice.last_heard(), None);
    }

    #[test]
    fn proven_addresses_are_bounded() {
        let mut ice = server();
        let now = Instant::now();
        let pwd = "server-password-0123456789abcdef";
        let mut forgotten = Vec::new();
        for port in 0..20 {
            let check = browser_check(&ice, false, pwd);
            let answered = ice
                .handle_check(now, addr(7000 + port), &check)
                .expect("check");
            forgotten.extend(answered.forgotten);
        }
        assert_eq!(
            forgotten.len(),
            20 - MAX_PROVEN,
            "each eviction is reported"
        );
        assert_eq!(forgotten[0], addr(7000));
        assert!(ice.path().is_some_and(|p| ice.is_proven(p)));
        assert_eq!(ice.proven.len(), MAX_PROVEN);
        assert!(ice.is_proven(addr(7019)));
        assert!(!ice.is_proven(addr(7000)));
    }

    #[test]
    fn the_synthetic_check_and_ping_response_are_authentic_to_each_side() {
        let ice = server();
        let crypto = default_provider().expect("crypto");
        let mut check = decode(&ice.rtc_check(true).expect("check")).expect("decodes");
        assert!(check.contains(ATTR_USE_CANDIDATE));
        MessageIntegrity::check(
            &mut check,
            b"server-password-0123456789abcdef",
            crypto.crypto(),
        )
        .expect("signed with the server's password, as the client signs its checks");
        let ping = build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(FINGERPRINT),
        ])
        .expect("ping");
        let mut response = decode(
            &ice.rtc_ping_response(&ping, addr(1))
                .expect("built")
                .expect("a response"),
        )
        .expect("decodes");
        assert_eq!(
            response.transaction_id,
            decode(&ping).expect("ping").transaction_id
        );
        MessageIntegrity::check(
            &mut response,
            b"client-password-0123456789",
            crypto.crypto(),
        )
        .expect("signed with the client's password, as the client signs its responses");
        assert_eq!(
            ice.rtc_ping_response(&response.raw, addr(1)),
            Ok(None),
            "only binding requests are answered"
        );
    }
}
