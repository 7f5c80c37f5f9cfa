//! Address sets as sorted, disjoint, inclusive `u128` intervals, IPv4 and
//! IPv6 kept apart, for `network` inclusion in `shadowed-allow`.

use crate::ir::NetSet;
use ipnet::IpNet;

/// A set of addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Addrs {
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
}

impl Addrs {
    /// The addresses of `set`: its networks minus its exceptions.
    pub(crate) fn of(set: &NetSet) -> Addrs {
        let include = Addrs::of_nets(&set.include);
        let except = Addrs::of_nets(&set.except);
        Addrs {
            v4: subtract(&include.v4, &except.v4),
            v6: subtract(&include.v6, &except.v6),
        }
    }

    fn of_nets(nets: &[IpNet]) -> Addrs {
        let mut out = Addrs::default();
        for net in nets {
            match net {
                IpNet::V4(n) => out.v4.push((
                    u32::from(n.network()).into(),
                    u32::from(n.broadcast()).into(),
                )),
                IpNet::V6(n) => out
                    .v6
                    .push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        normalize(&mut out.v4);
        normalize(&mut out.v6);
        out
    }

    /// Adds every address of `other`.
    pub(crate) fn extend(&mut self, other: &Addrs) {
        self.v4.extend_from_slice(&other.v4);
        self.v6.extend_from_slice(&other.v6);
        normalize(&mut self.v4);
        normalize(&mut self.v6);
    }

    /// Whether every address of `self` is in `other`.
    pub(crate) fn is_subset(&self, other: &Addrs) -> bool {
        subtract(&self.v4, &other.v4).is_empty() && subtract(&self.v6, &other.v6).is_empty()
    }
}

/// Sorts and merges overlapping or adjacent intervals.
fn normalize(v: &mut Vec<(u128, u128)>) {
    v.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
    for &(lo, hi) in v.iter() {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *v = out;
}

/// `a` minus `b`, both normalized.
fn subtract(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(lo, hi) in a {
        let mut cur = lo;
        let mut open = true;
        while j < b.len() && b[j].1 < cur {
            j += 1;
        }
        let mut k = j;
        while open && k < b.len() && b[k].0 <= hi {
            let (blo, bhi) = b[k];
            if blo > cur {
                out.push((cur, blo - 1));
            }
            if bhi >= hi {
                open = false;
            } else {
                cur = bhi + 1;
                k += 1;
            }
        }
        if open {
            out.push((cur, hi));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(include: &[&str], except: &[&str]) -> Addrs {
        Addrs::of(&NetSet {
            include: include.iter().map(|n| n.parse().unwrap()).collect(),
            except: except.iter().map(|n| n.parse().unwrap()).collect(),
        })
    }

    #[test]
    fn subsets_with_exceptions() {
        let ten = set(&["10.0.0.0/8"], &[]);
        assert!(set(&["10.1.0.0/16"], &[]).is_subset(&ten));
        assert!(!set(&["11.0.0.0/16"], &[]).is_subset(&ten));
        assert!(!ten.is_subset(&set(&["10.0.0.0/8"], &["10.2.0.0/16"])));
        assert!(set(&["10.0.0.0/8"], &["10.2.0.0/16"]).is_subset(&ten));
        assert!(set(&["10.1.0.0/16"], &[]).is_subset(&set(&["10.0.0.0/8"], &["10.2.0.0/16"])));
        // Two halves cover the whole.
        let mut halves = set(&["10.0.0.0/9"], &[]);
        halves.extend(&set(&["10.128.0.0/9"], &[]));
        assert!(ten.is_subset(&halves));
        // Families apart; the whole v6 space and v4 space at the edges.
        assert!(!set(&["::/0"], &[]).is_subset(&set(&["0.0.0.0/0"], &[])));
        assert!(set(&["::/0"], &["::1/128"]).is_subset(&set(&["::/0"], &[])));
        assert!(!set(&["::/0"], &[]).is_subset(&set(&["::/0"], &["ffff::/16"])));
        assert!(set(&["255.255.255.255/32", "0.0.0.0/32"], &[])
            .is_subset(&set(&["0.0.0.0/0"], &["1.0.0.0/8"])));
    }

    #[test]
    fn subtract_and_normalize() {
        let mut v = vec![(5, 9), (0, 3), (4, 4), (20, 30)];
        normalize(&mut v);
        assert_eq!(v, vec![(0, 9), (20, 30)]);
        assert_eq!(
            subtract(&v, &[(2, 3), (8, 25)]),
            vec![(0, 1), (4, 7), (26, 30)]
        );
        assert_eq!(subtract(&[(0, u128::MAX)], &[(0, u128::MAX)]), vec![]);
        assert_eq!(subtract(&[(0, u128::MAX)], &[(1, u128::MAX)]), vec![(0, 0)]);
    }
}
