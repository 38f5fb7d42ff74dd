//! Where the push worker may connect: a user picks the push endpoint, so without a check
//! the server would POST, on that user's behalf, to anything it can reach (its own
//! loopback, the private network, the cloud metadata service at 169.254.169.254).
//!
//! [`EgressPolicy`] says what is allowed; [`PublicResolver`] enforces it where a name
//! becomes addresses, inside the HTTP client's connector, so the address checked is the
//! address connected to (a name that resolves to a public address when checked and to
//! 127.0.0.1 a moment later can't slip through). IP-literal hosts never reach a resolver,
//! so [`EgressPolicy::check_url`] checks those before every send (and when a
//! subscription is saved).

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// What push endpoints may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressPolicy {
    /// `PUSH_ALLOW_PRIVATE=1` (tests and development only; refused with `APP_ENV=prod`):
    /// loopback, private and link-local addresses are allowed too.
    pub allow_private: bool,
    /// `APP_ENV=prod`: `https` on port 443 only. Otherwise `http` and any port are allowed
    /// (still only to public addresses, unless `allow_private`).
    pub production: bool,
}

impl Default for EgressPolicy {
    /// The strict policy: public addresses, https on port 443.
    fn default() -> Self {
        Self {
            allow_private: false,
            production: true,
        }
    }
}

/// Why an endpoint is not contacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    #[error("must be https")]
    NotHttps,
    #[error("must be an http(s) URL")]
    Scheme,
    #[error("must use port 443")]
    Port,
    #[error("must name a host and carry no credentials")]
    Host,
    #[error("must not be a loopback, private, link-local or otherwise non-public address")]
    NonPublicAddress,
    #[error("{0} resolves to no public address")]
    NonPublicName(String),
}

impl EgressPolicy {
    /// Checks everything about `url` that can be checked without DNS: scheme, port,
    /// credentials, and the address when the host is an IP literal.
    ///
    /// # Errors
    /// The first rule `url` breaks.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        match url.scheme() {
            "https" => {}
            "http" if self.production => return Err(EgressError::NotHttps),
            "http" => {}
            _ => return Err(EgressError::Scheme),
        }
        if self.production && url.port_or_known_default() != Some(443) {
            return Err(EgressError::Port);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EgressError::Host);
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(EgressError::Host)?;
        // The URL parser has already turned every IPv4 spelling (`2130706433`, `0x7f.1`)
        // into dotted form and put IPv6 in brackets; anything else is a name.
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return Ok(());
        };
        if self.allow_private || is_public(ip) {
            Ok(())
        } else {
            Err(EgressError::NonPublicAddress)
        }
    }
}

/// The push client's DNS resolver: the system's answer, less every address
/// [`is_public`] refuses (unless the policy allows private addresses). A name left with no
/// address fails to resolve with [`EgressError::NonPublicName`], which the sender tells
/// apart from a push service that didn't answer ([`is_refused`]).
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    policy: EgressPolicy,
}

impl PublicResolver {
    pub fn new(policy: EgressPolicy) -> Self {
        Self { policy }
    }
}

impl Resolve for PublicResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.policy.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found
                .filter(|addr| allow_private || is_public(addr.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(EgressError::NonPublicName(host)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Whether a send failed because [`PublicResolver`] refused the endpoint's addresses (not
/// retried: the answer won't get better) rather than because nobody answered.
pub fn is_refused(err: &(dyn StdError + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err.downcast_ref::<EgressError>().is_some() {
            return true;
        }
        cause = err.source();
    }
    false
}

/// Whether `ip` is a globally routable unicast address: not loopback, unspecified,
/// private (RFC 1918, IPv6 ULA), shared (100.64/10, carrier NAT), link-local (which holds
/// the cloud metadata service), multicast, broadcast, documentation, benchmarking or
/// reserved. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are
/// judged by that address; Teredo is refused outright.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let refused = a == 0 // "this network"
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || (a == 169 && b == 254) // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
        || (a == 192 && b == 168)
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    let refused = ip.is_unspecified()
        || ip.is_loopback()
        || (s[0] & 0xfe00) == 0xfc00 // unique local
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00 // multicast
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // discard
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || (s[0] == 0x2001 && (0x0010..0x0030).contains(&s[1])) // ORCHID
        || s[0] < 0x2000 // outside global unicast 2000::/3
        || s[0] >= 0x4000;
    !refused
}

/// The IPv4 address an IPv6 address stands for: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // `::` and `::1` are judged as IPv6 (unspecified, loopback).
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_not_public() {
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
        ] {
            assert!(!is_public(ip(refused)), "{refused} passed as public");
        }
    }

    #[test]
    fn ordinary_internet_addresses_are_public() {
        for public in [
            "8.8.8.8",
            "142.250.74.42",
            "172.15.0.1",
            "172.32.0.1",
            "100.128.0.1",
            "2a00:1450:4001:82b::200a",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip(public)), "{public} refused");
        }
    }

    fn check(policy: EgressPolicy, url: &str) -> Result<(), EgressError> {
        policy.check_url(&Url::parse(url).expect("url"))
    }

    #[test]
    fn production_allows_https_to_port_443_only() {
        let prod = EgressPolicy::default();
        assert_eq!(check(prod, "https://fcm.googleapis.com/fcm/send/x"), Ok(()));
        assert_eq!(check(prod, "https://push.example:443/x"), Ok(()));
        assert_eq!(
            check(prod, "https://push.example:8443/x"),
            Err(EgressError::Port)
        );
        assert_eq!(
            check(prod, "http://push.example/x"),
            Err(EgressError::NotHttps)
        );
        assert_eq!(
            check(prod, "ftp://push.example/x"),
            Err(EgressError::Scheme)
        );
    }

    #[test]
    fn ip_literal_hosts_are_refused_unless_public_or_allowed() {
        let dev = EgressPolicy {
            allow_private: false,
            production: false,
        };
        for url in [
            "http://127.0.0.1:9000/push/1",
            "http://[::1]:9000/push/1",
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/push",
            "http://0x7f.1/push",
            "http://[::ffff:10.0.0.1]/push",
        ] {
            assert_eq!(check(dev, url), Err(EgressError::NonPublicAddress), "{url}");
        }
        assert_eq!(check(dev, "http://8.8.8.8:8080/push"), Ok(()));
        assert_eq!(
            check(dev, "http://localhost:9000/push"),
            Ok(()),
            "names are checked by the resolver"
        );
        assert_eq!(
            check(dev, "http://user:pw@push.example/"),
            Err(EgressError::Host)
        );
        let allowed = EgressPolicy {
            allow_private: true,
            ..dev
        };
        assert_eq!(check(allowed, "http://127.0.0.1:9000/push/1"), Ok(()));
    }

    #[tokio::test]
    async fn the_resolver_drops_loopback_answers_and_says_why() {
        let strict = PublicResolver::new(EgressPolicy::default());
        let name: Name = "localhost".parse().expect("name");
        let err = match strict.resolve(name).await {
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err,
        };
        assert!(is_refused(err.as_ref()), "{err}");
        let open = PublicResolver::new(EgressPolicy {
            allow_private: true,
            production: false,
        });
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = open.resolve(name).await.expect("resolves").collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
