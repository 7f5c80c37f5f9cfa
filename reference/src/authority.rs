//! Authorities (`host`, `host:port`, `[v6]:port`) and host patterns
//! (spec section 5).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The port of an authority without one.
const DEFAULT_PORT: u16 = 80;

/// A parsed authority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Authority {
    /// The host: lowercase, without a trailing dot; an IPv6 literal without
    /// its brackets (`::1`).
    pub host: String,
    /// The port (80 when not written).
    pub port: u16,
    /// The address, when the host is an IP literal.
    pub ip: Option<IpAddr>,
}

/// A port: decimal digits, from 1 to 65535.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u16 = s.trim_start_matches('0').parse().ok()?;
    (n != 0).then_some(n)
}

/// A byte of an RFC 3986 `reg-name`: unreserved, `%` or a sub-delimiter.
fn is_reg_name_byte(b: u8) -> bool {
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

/// Parses `host`, `host:port`, `[v6]` or `[v6]:port`. The host is lowercased
/// and loses one trailing dot. `None` when it does not parse: an empty or
/// malformed host, a bad port, an unbracketed IPv6 address.
pub(crate) fn parse(s: &str) -> Option<Authority> {
    if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        let inner = &rest[..close];
        let v6: Ipv6Addr = inner.parse().ok()?;
        let after = &rest[close + 1..];
        let port = if after.is_empty() {
            DEFAULT_PORT
        } else {
            parse_port(after.strip_prefix(':')?)?
        };
        return Some(Authority {
            host: inner.to_ascii_lowercase(),
            port,
            ip: Some(IpAddr::V6(v6)),
        });
    }
    let (host, port) = match s.split_once(':') {
        Some((h, p)) => (h, parse_port(p)?),
        None => (s, DEFAULT_PORT),
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(&host).to_string();
    if host.is_empty() || !host.bytes().all(is_reg_name_byte) {
        return None;
    }
    let ip = host.parse::<Ipv4Addr>().ok().map(IpAddr::V4);
    Some(Authority { host, port, ip })
}

/// Whether `host` (already normalized by [`parse`]) matches the host
/// pattern: `"*"` every host, `"*.x.y"` a name with one or more labels
/// before `.x.y` (never `x.y` itself), anything else that name only.
/// Patterns compare case-insensitively and without a trailing dot.
pub(crate) fn host_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let pattern = pattern.strip_suffix('.').unwrap_or(&pattern);
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix("*.") {
        return match host.strip_suffix(suffix).and_then(|h| h.strip_suffix('.')) {
            Some(labels) => !labels.is_empty(),
            None => false,
        };
    }
    host == pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(host: &str, port: u16, ip: Option<&str>) -> Option<Authority> {
        Some(Authority {
            host: host.to_string(),
            port,
            ip: ip.map(|i| i.parse().unwrap()),
        })
    }

    #[test]
    fn parses() {
        assert_eq!(parse("payments.prod:8080"), a("payments.prod", 8080, None));
        assert_eq!(
            parse("Payments.Prod.Svc:8080"),
            a("payments.prod.svc", 8080, None)
        );
        assert_eq!(parse("search"), a("search", 80, None));
        assert_eq!(parse("GitHub.com.:8443"), a("github.com", 8443, None));
        assert_eq!(
            parse("10.0.0.1:5432"),
            a("10.0.0.1", 5432, Some("10.0.0.1"))
        );
        assert_eq!(parse("10.0.0.1."), a("10.0.0.1", 80, Some("10.0.0.1")));
        assert_eq!(parse("[::1]:80"), a("::1", 80, Some("::1")));
        assert_eq!(
            parse("[2001:DB8::1]"),
            a("2001:db8::1", 80, Some("2001:db8::1"))
        );
        assert_eq!(parse("h:080"), a("h", 80, None));
        assert_eq!(parse("h:65535"), a("h", 65535, None));
        assert_eq!(parse("my_host"), a("my_host", 80, None));
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            ":80",
            ".",
            "h:",
            "h:0",
            "h:65536",
            "h:+80",
            "h:8a",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[1.2.3.4]:80",
            "[fe80::1%eth0]",
            "h o",
            "a/b",
            "u@h",
            "é.com",
            "h:80:80",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("*", "anything"));
        assert!(host_matches("*", "::1"));
        assert!(host_matches("api.example.com", "api.example.com"));
        assert!(host_matches("API.Example.com.", "api.example.com"));
        assert!(!host_matches("api.example.com", "x.api.example.com"));
        assert!(host_matches("*.googleapis.com", "storage.googleapis.com"));
        assert!(host_matches("*.googleapis.com", "a.b.googleapis.com"));
        assert!(host_matches("*.GoogleAPIs.com", "a.googleapis.com"));
        assert!(!host_matches("*.googleapis.com", "googleapis.com"));
        assert!(!host_matches("*.googleapis.com", "xgoogleapis.com"));
        assert!(!host_matches("*.googleapis.com", ".googleapis.com"));
        assert!(!host_matches("*.googleapis.com", "googleapis.com.evil"));
    }
}
