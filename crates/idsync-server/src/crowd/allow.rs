//! An application's remote-address allow-list, as Crowd has one: addresses and CIDR ranges
//! (IPv4 and IPv6); empty means any address.

use std::net::IpAddr;

/// One allowed address or range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    addr: IpAddr,
    prefix: u8,
}

/// The addresses an application may call from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<Range>);

/// Why an allow-list entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?} is not an address or CIDR range such as 10.0.0.0/8 or 2001:db8::/32: {why}")]
pub struct BadAllowEntry {
    pub entry: String,
    pub why: String,
}

impl AllowList {
    /// Parse every entry; the first bad one is the error.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, BadAllowEntry> {
        entries
            .iter()
            .map(|e| parse_range(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()
            .map(AllowList)
    }

    /// Whether `addr` may call (always, for an empty list). An IPv4 address seen as IPv6
    /// (`::ffff:10.1.2.3`) is matched as IPv4.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|r| r.contains(addr.to_canonical()))
    }
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
        .map_err(|_| bad("not an IPv4 or IPv6 address (host names are not taken)"))?;
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
            "jira.example.com",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/x",
            "",
        ] {
            let e = AllowList::parse(&[bad]).unwrap_err();
            assert_eq!(e.entry, bad);
        }
    }
}
