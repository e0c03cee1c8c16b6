//! Where a run on a server may send requests. A server-side gate renders URLs from a deployment
//! file that anyone with push access writes, so its requests must not reach what only the
//! server can reach: loopback, link-local (169.254.0.0/16, where clouds serve instance
//! credentials), private and other special-purpose ranges are refused unless the server's
//! configuration allows the host or the range. The check is made on the addresses a name
//! resolves to (a name that resolves to 127.0.0.1 is refused) and again for every redirect.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// A range of addresses, `ADDRESS/PREFIX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// Parses `10.0.0.0/8`, `fd00::/8` or a single address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an address or range (e.g. 10.0.0.0/8)"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| format!("`{text}`: the prefix length is 0 to {bits}"))?,
            None => bits,
        };
        Ok(IpRange { network, prefix })
    }

    /// Whether `address` is in the range, as written or as the IPv4 address it carries (so a
    /// NAT64 range such as `64:ff9b::/96` can be allowed, and so can the IPv4 range behind it).
    pub fn contains(&self, address: IpAddr) -> bool {
        self.contains_exactly(address) || self.contains_exactly(canonical(address))
    }

    fn contains_exactly(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(network) & mask == u32::from(address) & mask
            }
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(network) & mask == u128::from(address) & mask
            }
            _ => false,
        }
    }
}

/// An IPv4 address carried in an IPv6 one is that IPv4 address: mapped (`::ffff:a.b.c.d`),
/// compatible (`::a.b.c.d`), translated (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`, which a NAT64 gateway turns into the
/// IPv4 address) and 6to4 (`2002:AABB:CCDD::`).
fn canonical(address: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = address else {
        return address;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let segments = v6.segments();
    let low = Ipv4Addr::from((u32::from(segments[6]) << 16) | u32::from(segments[7]));
    let high = Ipv4Addr::from((u32::from(segments[1]) << 16) | u32::from(segments[2]));
    match segments {
        // `::` and `::1` stay what they are (unspecified, loopback).
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => address,
        [0, 0, 0, 0, 0, 0, _, _]
        | [0, 0, 0, 0, 0xffff, 0, _, _]
        | [0x64, 0xff9b, 0, 0, 0, 0, _, _] => IpAddr::V4(low),
        [0x2002, ..] => IpAddr::V4(high),
        _ => address,
    }
}

/// Why an address is not one a server-side request may reach by default, if it is not.
pub fn special_purpose(address: IpAddr) -> Option<&'static str> {
    match canonical(address) {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(v4: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = v4.octets();
    if v4.is_loopback() {
        Some("a loopback address")
    } else if v4.is_link_local() {
        Some("a link-local address (cloud instance metadata lives there)")
    } else if v4.is_private() {
        Some("a private address")
    } else if v4.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if v4.octets()[..3] == [192, 0, 0] || (a == 198 && (b & 0xfe) == 18) {
        Some("a special-purpose address (IETF protocol assignments or benchmarking)")
    } else if v4 == Ipv4Addr::new(168, 63, 129, 16) {
        Some("Azure's host endpoint (instance metadata and agents)")
    } else if v4.is_broadcast() || v4.is_multicast() || a >= 240 {
        Some("a broadcast, multicast or reserved address")
    } else {
        None
    }
}

fn special_v6(v6: Ipv6Addr) -> Option<&'static str> {
    let first = v6.segments()[0];
    if v6.is_loopback() {
        Some("a loopback address")
    } else if v6.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if first & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if first == 0x64 && v6.segments()[1] == 0xff9b {
        Some("a NAT64 address of a private network")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if v6.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// A request refused by the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The policy: special-purpose addresses are refused unless their host or range is allowed.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    hosts: Vec<String>,
    ranges: Vec<IpRange>,
}

impl OutboundPolicy {
    /// A policy allowing `entries`: host names (`hooks.internal`) and address ranges
    /// (`10.1.0.0/16`, `192.168.1.20`).
    pub fn allowing<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut policy = OutboundPolicy::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry.is_empty() {
                continue;
            }
            if entry.contains('/') || entry.parse::<IpAddr>().is_ok() {
                policy.ranges.push(IpRange::parse(entry)?);
            } else {
                policy.hosts.push(entry.to_ascii_lowercase());
            }
        }
        Ok(policy)
    }

    /// Whether the host name is allowed whatever it resolves to.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Why `address` (reached for `host`) is refused, if it is.
    pub fn check(&self, host: &str, address: IpAddr) -> Result<(), Refused> {
        let Some(kind) = special_purpose(address) else {
            return Ok(());
        };
        if self.allows_host(host) || self.ranges.iter().any(|r| r.contains(address)) {
            return Ok(());
        }
        let named = if host == address.to_string()
            || host.trim_matches(['[', ']']) == address.to_string()
        {
            format!("{address}")
        } else {
            format!("`{host}` resolves to {address}, which")
        };
        Err(Refused(format!(
            "refused by the server's outbound policy: {named} is {kind}; allow the host or its range in the server's `allowOutbound` to call it"
        )))
    }

    /// Checks a URL whose host is an address (names are checked when they are resolved).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default();
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(address) => self.check(host, address),
            Err(_) => Ok(()),
        }
    }
}

/// A resolver that drops the addresses the policy refuses, and fails when none is left.
pub(crate) struct GuardedResolver(pub(crate) Arc<OutboundPolicy>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| match policy.check(&host, address.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        refusal.get_or_insert(refused);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(refused)) => {
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

/// The policy's refusal somewhere in `err`'s causes.
pub(crate) fn refusal_in(err: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn special_purpose_addresses_are_refused_by_default() {
        let policy = OutboundPolicy::default();
        for address in [
            "127.0.0.1",
            "169.254.169.254",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::a9fe:a9fe",
            "64:ff9b::a00:7",
            "64:ff9b:1::a00:7",
            "2002:a9fe:a9fe::1",
            "fec0::1",
            "192.0.0.170",
            "198.18.0.1",
            "168.63.129.16",
        ] {
            assert!(
                policy.check("example.test", ip(address)).is_err(),
                "{address} should be refused"
            );
        }
        for address in [
            "140.82.112.3",
            "8.8.8.8",
            "2606:4700::1111",
            "172.32.0.1",
            "64:ff9b::8c52:7003",
            "2002:8c52:7003::1",
        ] {
            assert!(
                policy.check("example.test", ip(address)).is_ok(),
                "{address}"
            );
        }
    }

    #[test]
    fn allowed_hosts_and_ranges_pass() {
        let policy =
            OutboundPolicy::allowing(&["hooks.internal", "10.1.0.0/16", "127.0.0.1"]).unwrap();
        assert!(policy.check("Hooks.Internal.", ip("10.9.9.9")).is_ok());
        assert!(policy.check("x.test", ip("10.1.200.3")).is_ok());
        assert!(policy.check("x.test", ip("10.2.0.1")).is_err());
        assert!(policy.check("127.0.0.1", ip("127.0.0.1")).is_ok());
        assert!(policy.check("127.0.0.1", ip("127.0.0.2")).is_err());
        let nat64 = OutboundPolicy::allowing(&["64:ff9b::/96"]).unwrap();
        assert!(nat64.check("internal.test", ip("64:ff9b::a00:7")).is_ok());
        assert!(policy.check("x.test", ip("::ffff:0:a00:7")).is_err());
    }

    #[test]
    fn refusals_name_the_host_the_address_and_the_way_out() {
        let policy = OutboundPolicy::default();
        let refused = policy
            .check("metadata.test", ip("169.254.169.254"))
            .unwrap_err();
        assert!(
            refused
                .0
                .contains("`metadata.test` resolves to 169.254.169.254"),
            "{refused}"
        );
        assert!(refused.0.contains("link-local"), "{refused}");
        assert!(refused.0.contains("allowOutbound"), "{refused}");
    }

    #[test]
    fn addresses_written_in_urls_are_checked_in_every_spelling() {
        let policy = OutboundPolicy::default();
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:169.254.169.254]/",
            "http://[::1]:8080/",
            "http://2852039166/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://10.0.0.1./",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert!(policy.check_url(&parsed).is_err(), "{url} passed");
        }
        let public = reqwest::Url::parse("https://140.82.112.3/").unwrap();
        assert!(policy.check_url(&public).is_ok());
        // Names are checked when resolved, not here.
        let name = reqwest::Url::parse("https://metadata.google.internal/").unwrap();
        assert!(policy.check_url(&name).is_ok());
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("ten/8").is_err());
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(IpRange::parse("fd00::/8").unwrap().contains(ip("fd12::1")));
    }
}
