//! Elementary intervals of ports and addresses: one witness per run of
//! values that every table involved treats alike.

use sluice_runtime::bundle::encode::Networks;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first value of every elementary interval of `lo..=hi` cut at the
/// bounds of `ranges` (inclusive ranges).
pub fn ports(ranges: &[(u16, u16)], lo: u16, hi: u16) -> Vec<u16> {
    let mut cuts = BTreeSet::new();
    cuts.insert(lo as u32);
    for &(a, b) in ranges {
        cuts.insert(a as u32);
        cuts.insert(b as u32 + 1);
    }
    cuts.into_iter()
        .filter(|&c| c >= lo as u32 && c <= hi as u32)
        .map(|c| c as u16)
        .collect()
}

/// Whether an IPv6 address carries an IPv4 address (spec section 7).
fn carries_v4(x: u128) -> bool {
    match x >> 32 {
        0xffff | 0x0064_ff9b_0000_0000_0000_0000 => true,
        0 => x > 1,
        _ => false,
    }
}

/// The targets (clauses or egress rules) of `table` that hold `ip`.
pub fn targets(table: &Networks, ip: IpAddr) -> Vec<u32> {
    let ip = sluice_runtime::canonical_ip(ip);
    let (family, x) = match ip {
        IpAddr::V4(a) => (&table.v4, u32::from(a) as u128),
        IpAddr::V6(a) => (&table.v6, u128::from(a)),
    };
    let i = family.partition_point(|e| e.0 <= x);
    let mut out = Vec::new();
    if let Some((_, hi, atoms)) = i.checked_sub(1).and_then(|i| family.get(i)) {
        if x <= *hi {
            for &a in atoms {
                if let Some(t) = table.atom_targets.get(a as usize) {
                    out.extend_from_slice(t);
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// One address per elementary interval of both tables (IPv4, then IPv6
/// outside the ranges that carry IPv4, which match as their IPv4 address),
/// with the targets of each table that hold it.
pub fn addresses(tables: [Option<&Networks>; 2]) -> Vec<(IpAddr, [Vec<u32>; 2])> {
    let mut v4 = BTreeSet::from([0u128]);
    let mut v6 = BTreeSet::from([0u128, 1, 2, 1 << 32]);
    for base in [0xffffu128 << 32, 0x0064_ff9b_u128 << 96] {
        v6.insert(base);
        v6.insert(base + (1 << 32));
    }
    for t in tables.iter().flatten() {
        for (first, last, _) in &t.v4 {
            v4.insert(*first);
            v4.insert(last + 1);
        }
        for (first, last, _) in &t.v6 {
            v6.insert(*first);
            if let Some(n) = last.checked_add(1) {
                v6.insert(n);
            }
        }
    }
    let ips = v4
        .into_iter()
        .filter(|&x| x <= u32::MAX as u128)
        .map(|x| IpAddr::V4(Ipv4Addr::from(x as u32)))
        .chain(
            v6.into_iter()
                .filter(|&x| !carries_v4(x))
                .map(|x| IpAddr::V6(Ipv6Addr::from(x))),
        );
    ips.map(|ip| {
        let of = |t: Option<&Networks>| t.map(|t| targets(t, ip)).unwrap_or_default();
        (ip, [of(tables[0]), of(tables[1])])
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_intervals() {
        assert_eq!(
            ports(&[(80, 80), (8000, 8999)], 0, 65535),
            vec![0, 80, 81, 8000, 9000]
        );
        assert_eq!(ports(&[(1, 10)], 1, 65535), vec![1, 11]);
        assert_eq!(ports(&[(65000, 65535)], 0, 65535), vec![0, 65000]);
    }

    #[test]
    fn address_intervals_skip_ipv4_carrying_ranges() {
        let table = Networks {
            v4: vec![(0x0a00_0000, 0x0aff_ffff, vec![0])],
            v6: vec![],
            atom_targets: vec![vec![3]],
        };
        let got = addresses([Some(&table), None]);
        let ips: Vec<String> = got.iter().map(|(ip, _)| ip.to_string()).collect();
        assert_eq!(
            ips,
            vec![
                "0.0.0.0",
                "10.0.0.0",
                "11.0.0.0",
                "::",
                "::1",
                "::1:0:0",
                "::1:0:0:0",
                "64:ff9b::1:0:0"
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        );
        assert_eq!(got[1].1, [vec![3], vec![]]);
        assert!(got
            .iter()
            .all(|(ip, _)| sluice_runtime::canonical_ip(*ip) == *ip));
    }
}
