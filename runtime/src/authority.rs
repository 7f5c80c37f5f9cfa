//! Authorities, `host[:port]` or `[v6][:port]`: one layout, read two ways.
//! [`Authority::parse`] checks the host and port as outbound decisions need
//! (spec section 5); [`Authority::split`] only takes the text apart, for
//! names checked elsewhere (bundle endpoint names, which the compiler
//! validated) or to be resolved exactly as written.

use crate::decision::RequestError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An authority split into host (without one trailing dot) and port, as
/// outbound decisions compare it (spec section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authority<'r> {
    /// The host as written, without one trailing dot; an IPv6 literal
    /// without its brackets.
    pub host: &'r str,
    /// The port; 80 when unwritten.
    pub port: u16,
    /// The host as an address, when it is an IP literal.
    pub ip: Option<IpAddr>,
}

/// An authority's host and port exactly as written, from [`Authority::split`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostPort<'r> {
    /// The host as written; for `[...]`, what the brackets hold, unchecked.
    pub host: &'r str,
    /// The port, when one is written.
    pub port: Option<u16>,
}

impl HostPort<'_> {
    /// The port; 80 when none is written.
    pub fn port_or_80(&self) -> u16 {
        self.port.unwrap_or(80)
    }
}

/// The layout of `host[:port]` / `[host][:port]`: the host (inside the
/// brackets when `bracketed`) and the port text. An unbracketed host may
/// still hold a `:`, which both readings refuse.
struct Layout<'r> {
    host: &'r str,
    bracketed: bool,
    port: Option<&'r str>,
}

impl<'r> Layout<'r> {
    /// Takes `authority` apart: `[host]` and an optional `:port`, else the
    /// text before and after its last `:`. `None` when a `[` is not closed
    /// or text follows the `]` that is not `:port`.
    #[inline]
    fn of(authority: &'r str) -> Option<Layout<'r>> {
        if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return None,
            };
            return Some(Layout {
                host,
                bracketed: true,
                port,
            });
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        Some(Layout {
            host,
            bracketed: false,
            port,
        })
    }
}

impl<'r> Authority<'r> {
    /// Parses `host[:port]` or `[v6][:port]` as a request's authority: the
    /// host is an RFC 3986 `reg-name` (one trailing dot dropped) or an IP
    /// literal, the port decimal digits from 1 to 65535; 80 when absent.
    #[inline]
    pub fn parse(authority: &'r str) -> Result<Authority<'r>, RequestError<'static>> {
        let layout = Layout::of(authority).ok_or(RequestError::BadAuthority)?;
        let port = parse_port(layout.port)?;
        if layout.bracketed {
            let ip: Ipv6Addr = layout
                .host
                .parse()
                .map_err(|_| RequestError::BadAuthority)?;
            return Ok(Authority {
                host: layout.host,
                port,
                ip: Some(IpAddr::V6(ip)),
            });
        }
        // `:` is no `reg-name` byte.
        let host = layout.host.strip_suffix('.').unwrap_or(layout.host);
        if host.is_empty() || !host.bytes().fold(true, |ok, b| ok & REG_NAME[b as usize]) {
            return Err(RequestError::BadAuthority);
        }
        // Only a host that starts and ends with a digit can be an IPv4 literal.
        let maybe_ip = host.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && host.as_bytes().last().is_some_and(u8::is_ascii_digit);
        let ip = if maybe_ip {
            host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        } else {
            None
        };
        Ok(Authority { host, port, ip })
    }

    /// Splits `host[:port]` or `[host][:port]` without checking the host:
    /// it comes back as written (a trailing dot kept; between brackets,
    /// anything but `]`, even empty), and the port is any text Rust reads
    /// as a `u16` (`0` and `+8` too). `None` when the layout is wrong or
    /// the port is not a `u16`. For names checked elsewhere (bundle
    /// endpoint names) and hosts to resolve exactly as written.
    pub fn split(authority: &'r str) -> Option<HostPort<'r>> {
        let layout = Layout::of(authority)?;
        if !layout.bracketed && layout.host.contains(':') {
            return None;
        }
        let port = match layout.port {
            Some(port) => Some(port.parse().ok()?),
            None => None,
        };
        Some(HostPort {
            host: layout.host,
            port,
        })
    }
}

/// Per byte, whether it is a `reg-name` byte: a table, so a host is
/// checked without a branch per byte.
static REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_reg_name_byte(b as u8);
        b += 1;
    }
    t
};

/// A byte of an RFC 3986 `reg-name`: unreserved, `%` or a sub-delimiter.
const fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// A port: decimal digits (leading zeros allowed) from 1 to 65535; 80 when absent.
fn parse_port(p: Option<&str>) -> Result<u16, RequestError<'static>> {
    let Some(p) = p else { return Ok(80) };
    let digits = p.trim_start_matches('0');
    if p.is_empty() || digits.len() > 5 {
        return Err(RequestError::BadAuthority);
    }
    let mut n = 0u32;
    for b in digits.bytes() {
        if !b.is_ascii_digit() {
            return Err(RequestError::BadAuthority);
        }
        n = n * 10 + u32::from(b - b'0');
    }
    match u16::try_from(n) {
        Ok(n) if n != 0 => Ok(n),
        _ => Err(RequestError::BadAuthority),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let parse = Authority::parse;
        let a = parse("Payments.Prod:8080").unwrap();
        assert_eq!((a.host, a.port, a.ip), ("Payments.Prod", 8080, None));
        let a = parse("github.com.").unwrap();
        assert_eq!((a.host, a.port), ("github.com", 80));
        let a = parse("[::1]:443").unwrap();
        assert_eq!((a.host, a.port), ("::1", 443));
        assert_eq!(a.ip, Some("::1".parse().unwrap()));
        let a = parse("10.0.0.1").unwrap();
        assert_eq!(a.ip, Some("10.0.0.1".parse().unwrap()));
        assert!(parse("").is_err());
        assert!(parse("a:0").is_err());
        assert!(parse("a:99999").is_err());
        assert!(parse("a b").is_err());
        assert!(parse("a<b").is_err());
        assert!(parse("\u{e9}.com").is_err());
        assert_eq!(parse("h:000080").unwrap().port, 80);
        assert_eq!(parse("h:65535").unwrap().port, 65535);
        for bad in [
            "h:", "h:65536", "h:0000", "h:+80", "h:8x", "h:x8", "h:123456",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("[::1").is_err());
    }

    #[test]
    fn authorities_split() {
        let split = |a| Authority::split(a).map(|s| (s.host, s.port_or_80()));
        assert_eq!(split("a.example:8080"), Some(("a.example", 8080)));
        assert_eq!(split("a.example"), Some(("a.example", 80)));
        assert_eq!(split("[::1]:9"), Some(("::1", 9)));
        assert_eq!(split("[::1]"), Some(("::1", 80)));
        assert_eq!(split("a:b"), None);
        assert_eq!(split("::1"), None);
        // Unchecked: a trailing dot stays, brackets may hold a name.
        assert_eq!(split("a.example."), Some(("a.example.", 80)));
        assert_eq!(split("[name]:+8"), Some(("name", 8)));
        // Whether a port is written.
        let port = |a| Authority::split(a).map(|s| s.port);
        assert_eq!(port("a:1"), Some(Some(1)));
        assert_eq!(port("a"), Some(None));
        assert_eq!(port("[::1]:8"), Some(Some(8)));
        assert_eq!(port("[::1]"), Some(None));
    }

    /// Every authority of up to five characters from an alphabet of the
    /// characters that matter: one a request may use (`parse` accepts it)
    /// splits into the same port and host, the host as written (with the
    /// trailing dot `parse` drops).
    #[test]
    fn what_parse_accepts_splits_alike() {
        const ALPHABET: &[char] = &['a', '1', '0', '.', ':', '[', ']', '+', ' ', 'f'];
        let mut texts = vec![String::new()];
        let mut start = 0;
        for _ in 0..5 {
            let end = texts.len();
            for i in start..end {
                for &c in ALPHABET {
                    let mut longer = texts[i].clone();
                    longer.push(c);
                    texts.push(longer);
                }
            }
            start = end;
        }
        for text in &texts {
            let Ok(parsed) = Authority::parse(text) else {
                continue;
            };
            let split = Authority::split(text).unwrap_or_else(|| panic!("{text:?}"));
            assert_eq!(split.port_or_80(), parsed.port, "{text:?}");
            let host = if text.starts_with('[') {
                split.host
            } else {
                split.host.strip_suffix('.').unwrap_or(split.host)
            };
            assert_eq!(host, parsed.host, "{text:?}");
        }
    }
}
