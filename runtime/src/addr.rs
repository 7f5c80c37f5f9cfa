//! Addresses that carry an IPv4 address (spec section 7, "Addresses").

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The IPv4 address an IPv6 address carries, if it carries one:
/// IPv4-mapped (`::ffff:0:0/96`), the NAT64 well-known prefix
/// (`64:ff9b::/96`) or IPv4-compatible (`::/96`, but not `::` and `::1`).
pub fn embedded_ipv4(a: Ipv6Addr) -> Option<Ipv4Addr> {
    let x = u128::from(a);
    let low = x as u32;
    match x >> 32 {
        0xffff | 0x0064_ff9b_0000_0000_0000_0000 => Some(Ipv4Addr::from(low)),
        0 if low > 1 => Some(Ipv4Addr::from(low)),
        _ => None,
    }
}

/// The address networks are matched against: `ip` itself, or the IPv4
/// address it carries (see [`embedded_ipv4`]).
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(a) => embedded_ipv4(a).map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Whether every address of the IPv6 range `addr/len` lies in a prefix whose
/// addresses carry IPv4 (`::ffff:0:0/96`, `64:ff9b::/96`, `::/96`), other
/// than the single addresses `::` and `::1`. A policy must write such ranges
/// as IPv4.
pub fn is_ipv4_carrying_range(addr: Ipv6Addr, len: u8) -> bool {
    if len < 96 {
        return false;
    }
    let x = u128::from(addr);
    if len == 128 && x <= 1 {
        return false;
    }
    matches!(x >> 32, 0 | 0xffff | 0x0064_ff9b_0000_0000_0000_0000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn carried_ipv4() {
        let v4 = |s: &str| Some(s.parse::<Ipv4Addr>().unwrap());
        assert_eq!(embedded_ipv4(v6("::ffff:10.1.2.3")), v4("10.1.2.3"));
        assert_eq!(
            embedded_ipv4(v6("64:ff9b::a9fe:a9fe")),
            v4("169.254.169.254")
        );
        assert_eq!(embedded_ipv4(v6("::10.0.0.1")), v4("10.0.0.1"));
        assert_eq!(embedded_ipv4(v6("::2")), v4("0.0.0.2"));
        assert_eq!(embedded_ipv4(v6("::")), None);
        assert_eq!(embedded_ipv4(v6("::1")), None);
        assert_eq!(embedded_ipv4(v6("2001:db8::a00:1")), None);
        assert_eq!(embedded_ipv4(v6("64:ff9b:1::a00:1")), None);
        assert_eq!(embedded_ipv4(v6("::1:ffff:a00:1")), None);
        assert_eq!(embedded_ipv4(v6("::fffe:a00:1")), None);
        let ip: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(ip), ip);
    }

    #[test]
    fn carrying_ranges() {
        assert!(is_ipv4_carrying_range(v6("::ffff:10.0.0.0"), 104));
        assert!(is_ipv4_carrying_range(v6("::ffff:0:0"), 96));
        assert!(is_ipv4_carrying_range(v6("64:ff9b::"), 96));
        assert!(is_ipv4_carrying_range(v6("::"), 96));
        assert!(is_ipv4_carrying_range(v6("::a00:1"), 128));
        assert!(!is_ipv4_carrying_range(v6("::"), 128));
        assert!(!is_ipv4_carrying_range(v6("::1"), 128));
        assert!(!is_ipv4_carrying_range(v6("::"), 95));
        assert!(!is_ipv4_carrying_range(v6("::"), 0));
        assert!(!is_ipv4_carrying_range(v6("2001:db8::"), 32));
        assert!(!is_ipv4_carrying_range(v6("64:ff9b:1::"), 96));
    }
}
