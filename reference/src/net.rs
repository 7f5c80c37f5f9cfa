//! Networks (`10.0.0.0/8`, `2001:db8::/32`, a bare address) and
//! containment by integer masks. Addresses are parsed with `std::net` only.

use std::net::IpAddr;

use sluice_lang::ast::Networks;

/// A parsed network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    addr: IpAddr,
    len: u32,
}

/// Parses `ADDR` or `ADDR/LEN`; a bare address is a /32 or /128. `None`
/// for anything else (a checked policy has no bad network).
pub(crate) fn parse_cidr(s: &str) -> Option<Cidr> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => {
            if l.is_empty() || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let len: u32 = l.parse().ok()?;
            if len > max {
                return None;
            }
            len
        }
    };
    Some(Cidr { addr, len })
}

/// A mask of `len` leading one bits in 32 bits.
fn mask_v4(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len.min(32))
    }
}

/// A mask of `len` leading one bits in 128 bits.
fn mask_v6(len: u32) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len.min(128))
    }
}

impl Cidr {
    /// Whether `ip` lies in this network. Families never mix: an IPv4
    /// network holds no IPv6 address, not even an IPv4-mapped one.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let m = mask_v4(self.len);
                u32::from(net) & m == u32::from(a) & m
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let m = mask_v6(self.len);
                u128::from(net) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

/// Section 7, "Addresses": an IPv6 address whose first 96 bits are those of
/// `::ffff:0:0`, `64:ff9b::` or `::` (except `::` and `::1` themselves)
/// stands for the IPv4 address in its last 32 bits.
pub(crate) fn carried_ipv4(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    let s = v6.segments();
    let mapped = s[..6] == [0, 0, 0, 0, 0, 0xffff];
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let compatible = s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1);
    if mapped || nat64 || compatible {
        let [a, b] = s[6].to_be_bytes();
        let [c, d] = s[7].to_be_bytes();
        IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d))
    } else {
        ip
    }
}

/// Whether `ip` lies in some listed network and in no `except` network. A
/// peer or destination without an IP lies in no network.
pub(crate) fn in_networks(nets: &Networks, ip: Option<IpAddr>) -> bool {
    let Some(ip) = ip.map(carried_ipv4) else {
        return false;
    };
    let in_any = |list: &[sluice_lang::ast::Net]| {
        list.iter()
            .any(|n| parse_cidr(&n.node).is_some_and(|c| c.contains(ip)))
    };
    in_any(&nets.include) && !in_any(&nets.except)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_lang::ast::{Span, Spanned};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn has(net: &str, addr: &str) -> bool {
        parse_cidr(net).unwrap().contains(ip(addr))
    }

    #[test]
    fn parses() {
        assert_eq!(
            parse_cidr("10.0.0.0/8"),
            Some(Cidr {
                addr: ip("10.0.0.0"),
                len: 8
            })
        );
        assert_eq!(
            parse_cidr("::1"),
            Some(Cidr {
                addr: ip("::1"),
                len: 128
            })
        );
        assert_eq!(
            parse_cidr("1.2.3.4"),
            Some(Cidr {
                addr: ip("1.2.3.4"),
                len: 32
            })
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "x",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(parse_cidr(bad), None, "{bad}");
        }
    }

    #[test]
    fn contains() {
        assert!(has("10.0.0.0/8", "10.255.1.2"));
        assert!(!has("10.0.0.0/8", "11.0.0.0"));
        assert!(has("0.0.0.0/0", "255.255.255.255"));
        assert!(has("169.254.169.254", "169.254.169.254"));
        assert!(!has("169.254.169.254", "169.254.169.253"));
        assert!(has("2001:db8::/32", "2001:db8:1::5"));
        assert!(!has("2001:db8::/32", "2001:db9::"));
        assert!(has("::/0", "::1"));
        assert!(!has("::/0", "1.2.3.4"));
        assert!(!has("0.0.0.0/0", "::ffff:1.2.3.4"));
        // Whole-address matching goes through `carried_ipv4` first.
        assert_eq!(carried_ipv4(ip("::ffff:1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(carried_ipv4(ip("64:ff9b::102:304")), ip("1.2.3.4"));
        assert_eq!(carried_ipv4(ip("::1.2.3.4")), ip("1.2.3.4"));
        assert_eq!(carried_ipv4(ip("::2")), ip("0.0.0.2"));
        for same in [
            "::",
            "::1",
            "2001:db8::102:304",
            "64:ff9b:1::102:304",
            "10.0.0.1",
        ] {
            assert_eq!(carried_ipv4(ip(same)), ip(same), "{same}");
        }
        assert!(has("192.168.13.0/24", "192.168.13.7"));
        assert!(has("10.0.0.0/31", "10.0.0.1"));
        assert!(!has("10.0.0.0/32", "10.0.0.1"));
    }

    #[test]
    fn sets() {
        let n = |s: &str| Spanned::new(s.to_string(), Span::default());
        let nets = Networks {
            include: vec![n("192.168.0.0/16"), n("2001:db8::/32")],
            except: vec![n("192.168.13.0/24")],
        };
        assert!(in_networks(&nets, Some(ip("192.168.1.20"))));
        assert!(!in_networks(&nets, Some(ip("192.168.13.7"))));
        assert!(in_networks(&nets, Some(ip("2001:db8::1"))));
        assert!(!in_networks(&nets, Some(ip("10.0.0.1"))));
        assert!(!in_networks(&nets, None));
    }
}
