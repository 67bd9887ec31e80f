//! An application's remote-address allow-list, as Crowd has one: addresses and CIDR ranges
//! (IPv4 and IPv6) and host names; empty means any address. A host name allows the addresses
//! it resolves to (`resolve`, asked again each time the server re-checks the application, so
//! a changed DNS record takes effect within seconds); one that does not resolve allows none.

use std::net::IpAddr;
use std::time::Duration;

/// How long a host name's resolution may take before it counts as not resolving.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// One allowed address or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    addr: IpAddr,
    prefix: u8,
}

/// The addresses an application may call from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    ranges: Vec<Range>,
    hosts: Vec<String>,
    /// What `hosts` resolved to when last asked.
    resolved: Vec<IpAddr>,
}

/// Why an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an address, a CIDR range such as 10.0.0.0/8 or 2001:db8::/32, or a host name: {why}")]
pub struct BadAllowEntry {
    pub entry: String,
    pub why: String,
}

impl AllowList {
    /// Parse every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, BadAllowEntry> {
        let mut list = AllowList::default();
        for e in entries {
            let e = e.as_ref().trim();
            match parse_range(e) {
                Ok(r) => list.ranges.push(r),
                Err(bad) if e.contains('/') || !is_host_name(e) => return Err(bad),
                Err(_) => list.hosts.push(e.to_ascii_lowercase()),
            }
        }
        Ok(list)
    }

    /// Whether the list names host names, which [`AllowList::resolve`] turns into addresses.
    pub fn has_hosts(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// Resolve the host names again (each within 2 s). A name that does not resolve allows no
    /// address, and is logged.
    pub async fn resolve(mut self) -> AllowList {
        let mut resolved = Vec::new();
        for host in &self.hosts {
            match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host.as_str(), 0)))
                .await
            {
                Ok(Ok(addrs)) => resolved.extend(addrs.map(|a| a.ip().to_canonical())),
                Ok(Err(e)) => {
                    tracing::warn!(host = %host, error = %e, "an allowed host name does not resolve: it allows no address");
                }
                Err(_) => {
                    tracing::warn!(host = %host, "an allowed host name did not resolve within 2 s: it allows no address");
                }
            }
        }
        resolved.sort_unstable();
        resolved.dedup();
        self.resolved = resolved;
        self
    }

    /// Whether `addr` may call (always, for an empty list). An IPv4 address seen as IPv6
    /// (`::ffff:10.1.2.3`) is matched as IPv4.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        (self.ranges.is_empty() && self.hosts.is_empty())
            || self.ranges.iter().any(|r| r.contains(addr))
            || self.resolved.contains(&addr)
    }
}

/// A host name as DNS takes it (RFC 1123): labels of letters, digits and hyphens, not
/// starting or ending with a hyphen, at most 63 characters each and 253 in all; not all
/// digits and dots (that would be a mistyped address).
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && !s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn parse_range(entry: &str) -> Result<Range, BadAllowEntry> {
    let bad = |why: &str| BadAllowEntry {
        entry: entry.to_string(),
        why: why.to_string(),
    };
    let (addr, prefix) = match entry.trim().split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry.trim(), None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| bad("not an IPv4 or IPv6 address, nor a host name"))?;
    let addr = addr.to_canonical();
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| bad(&format!("the prefix length must be 0 to {max}")))?,
    };
    Ok(Range { addr, prefix })
}

impl Range {
    fn contains(&self, addr: IpAddr) -> bool {
        match (self.addr, addr) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_and_addresses() {
        let l = AllowList::parse(&["10.0.0.0/8", "192.168.1.5", "2001:db8::/32"]).unwrap();
        assert!(l.allows(ip("10.200.3.4")));
        assert!(l.allows(ip("::ffff:10.1.1.1")));
        assert!(l.allows(ip("192.168.1.5")));
        assert!(!l.allows(ip("192.168.1.6")));
        assert!(l.allows(ip("2001:db8:1::1")));
        assert!(!l.allows(ip("2001:db9::1")));
        assert!(!l.allows(ip("127.0.0.1")));
        assert!(AllowList::parse(&["0.0.0.0/0"])
            .unwrap()
            .allows(ip("8.8.8.8")));
        assert!(AllowList::default().allows(ip("8.8.8.8")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "jira example.com",
            "-jira.example.com",
            "10.0.0.0/33",
            "10.0.0.256",
            "jira.example.com/24",
            "::/129",
            "10.0.0.0/x",
            "",
        ] {
            let e = AllowList::parse(&[bad]).unwrap_err();
            assert_eq!(e.entry, bad);
        }
    }

    #[test]
    fn host_names_are_taken_and_allow_nothing_until_resolved() {
        let l = AllowList::parse(&["Jira.Example.com", "10.0.0.0/8"]).unwrap();
        assert!(l.has_hosts());
        assert!(l.allows(ip("10.1.2.3")));
        assert!(!l.allows(ip("127.0.0.1")));
        // A list of host names only is not "any address".
        let l = AllowList::parse(&["jira.example.com"]).unwrap();
        assert!(!l.allows(ip("127.0.0.1")));
    }

    #[tokio::test]
    async fn localhost_resolves_to_the_loopback_address() {
        let l = AllowList::parse(&["localhost"]).unwrap().resolve().await;
        assert!(l.allows(ip("127.0.0.1")) || l.allows(ip("::1")), "{l:?}");
        assert!(!l.allows(ip("10.0.0.1")));
    }
}
