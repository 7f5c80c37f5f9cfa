//! Validation and normalization of single values: paths, `grpc` strings,
//! authorities, endpoints, networks, identity patterns and host patterns.
//!
//! Every function is pure: it returns the lowered value, or a lowercase
//! message (user input in backticks) for the caller to report.

use crate::ir::{Endpoint, PathCond};
use ipnet::IpNet;
use sluice_runtime::normalize::normalize_path;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Longest SPIFFE ID or identity pattern, in bytes.
pub const MAX_IDENTITY_LEN: usize = 2048;

/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `path` is a path as the proxy would forward it: it starts with
/// `/`, has no query or fragment, and normalizing it changes nothing.
fn normalized(path: &str) -> Result<(), String> {
    if let Some(c) = path.chars().find(|&c| c == '?' || c == '#') {
        return Err(format!(
            "path `{path}` holds `{c}`: a policy path cannot hold a query or fragment"
        ));
    }
    let mut out = Vec::new();
    match normalize_path(path.as_bytes(), &mut out) {
        Err(e) => Err(format!("path `{path}` cannot be normalized: {e}")),
        Ok(()) if out != path.as_bytes() => Err(format!(
            "path `{path}` is not normalized (it normalizes to `{}`)",
            String::from_utf8_lossy(&out)
        )),
        Ok(()) => Ok(()),
    }
}

/// `path "..."`: the path must already be normalized.
pub fn exact_path(path: &str) -> Result<PathCond, String> {
    normalized(path)?;
    Ok(PathCond::Exact(path.to_string()))
}

/// `path prefix "..."`: the prefix must already be normalized; a trailing
/// `/` is dropped, and prefix `/` matches everything.
pub fn prefix_path(prefix: &str) -> Result<PathCond, String> {
    normalized(prefix)?;
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if trimmed.is_empty() {
        Ok(PathCond::Any)
    } else {
        Ok(PathCond::Prefix(trimmed.to_string()))
    }
}

/// `grpc "pkg.Service/Method"` (exact path `/pkg.Service/Method`) or
/// `grpc "pkg.Service/*"` (prefix `/pkg.Service`).
pub fn grpc_path(spec: &str) -> Result<PathCond, String> {
    let bad = |why: &str| {
        Err(format!("`{spec}` is not a valid `grpc` condition ({why}); write `pkg.Service/Method` or `pkg.Service/*`"))
    };
    let Some((service, method)) = spec.split_once('/') else {
        return bad("no `/`");
    };
    if method.contains('/') {
        return bad("more than one `/`");
    }
    if service.is_empty() {
        return bad("empty service");
    }
    if method.is_empty() {
        return bad("empty method");
    }
    if service.contains('*') || (method.contains('*') && method != "*") {
        return bad("`*` may only stand for the whole method");
    }
    let service_path = format!("/{service}");
    if method == "*" {
        if normalized(&service_path).is_err() {
            return bad("the service is not a normalized path segment");
        }
        return Ok(PathCond::Prefix(service_path));
    }
    let full = format!("/{service}/{method}");
    if normalized(&full).is_err() {
        return bad("the result is not a normalized path");
    }
    Ok(PathCond::Exact(full))
}

/// Parses a port number written as decimal digits (1 to 65535).
fn port(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 5 {
        return None;
    }
    digits.parse::<u16>().ok().filter(|&p| p != 0)
}

/// Whether `host` (without port) is usable as an authority or DNS host:
/// non-empty, no whitespace, control byte, `/`, `@` or `*`.
fn plain_host_problem(host: &str) -> Option<&'static str> {
    if host.is_empty() {
        return Some("empty host");
    }
    for c in host.chars() {
        if c.is_whitespace() || c.is_control() {
            return Some("whitespace or a control character in the host");
        }
        match c {
            '/' => return Some("`/` in the host"),
            '@' => return Some("`@` in the host"),
            '*' => return Some("`*` in the host"),
            '?' | '#' => return Some("a query or fragment in the host"),
            '[' | ']' => return Some("a misplaced bracket"),
            _ => {}
        }
    }
    None
}

/// Splits `host[:port]` / `[v6][:port]`; the host keeps its brackets.
/// Returns the host and the port text, if any.
fn split_host_port(text: &str) -> Result<(&str, Option<&str>), &'static str> {
    if text.starts_with('[') {
        let Some(close) = text.find(']') else {
            return Err("an unclosed `[`");
        };
        let inner = &text[1..close];
        if inner.parse::<Ipv6Addr>().is_err() {
            return Err("the bracketed part is not an IPv6 address");
        }
        let host = &text[..=close];
        let rest = &text[close + 1..];
        if rest.is_empty() {
            return Ok((host, None));
        }
        return match rest.strip_prefix(':') {
            Some(p) => Ok((host, Some(p))),
            None => Err("text after `]` that is not `:PORT`"),
        };
    }
    match text.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err("an IPv6 address must be written in brackets"),
        Some((host, p)) => Ok((host, Some(p))),
        None => Ok((text, None)),
    }
}

/// The error for a malformed `what` (`authority`, `endpoint`) `text`: why,
/// and what to write instead.
fn malformed<T>(what: &str, text: &str, why: &str, write: &str) -> Result<T, String> {
    Err(format!(
        "{what} `{text}` is malformed ({why}); write {write}"
    ))
}

/// An `authority` entry: `host[:port]` or `[v6][:port]`. The host is
/// lowercased, loses one trailing dot, and the port defaults to 80.
pub fn authority(text: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| malformed("authority", text, why, "`host` or `host:port`");
    let (host, port_text) = match split_host_port(text) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    if !host.starts_with('[') {
        if let Some(why) = plain_host_problem(host) {
            return bad(why);
        }
    }
    let port = match port_text {
        None => 80,
        Some(p) => match port(p) {
            Some(p) => p,
            None => return bad(&format!("port `{p}` is not a number from 1 to 65535")),
        },
    };
    // `[v6]` compares as the bracketed text, lowercased, as requests do.
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let host = host.to_ascii_lowercase();
    let host = host.strip_suffix('.').map(str::to_string).unwrap_or(host);
    if host.is_empty() {
        return bad("empty host");
    }
    Ok((host, port))
}

/// An address endpoint token: `a.b.c.d:port` or `[v6]:port`.
pub fn endpoint_addr(text: &str) -> Result<SocketAddr, String> {
    if text.contains('%') {
        return Err(format!(
            "endpoint `{text}` has a zone (`%`), which is not allowed"
        ));
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(format!(
            "endpoint `{text}` has port `0` (ports are 1 to 65535)"
        )),
        Ok(addr) => Ok(addr),
        Err(_) => Err(format!(
            "endpoint `{text}` is not a valid socket address (`a.b.c.d:port` or `[v6]:port`)"
        )),
    }
}

/// A DNS endpoint string `"host.name:port"`. A string that is a socket
/// address becomes an address endpoint; a name is lowercased.
pub fn endpoint_name(text: &str) -> Result<Endpoint, String> {
    if text.parse::<SocketAddr>().is_ok() {
        return endpoint_addr(text).map(Endpoint::Addr);
    }
    let bad = |why: &str| malformed("endpoint", text, why, "`\"host.name:port\"`");
    let (host, port_text) = match split_host_port(text) {
        Ok(v) => v,
        Err(why) => return bad(why),
    };
    let Some(port_text) = port_text else {
        return bad("no port");
    };
    if let Some(why) = plain_host_problem(host) {
        if !host.starts_with('[') {
            return bad(why);
        }
    }
    let Some(port) = port(port_text) else {
        return bad(&format!(
            "port `{port_text}` is not a number from 1 to 65535"
        ));
    };
    Ok(Endpoint::Name(host.to_ascii_lowercase(), port))
}

/// A `NET` token: an IPv4 or IPv6 address with an optional `/len`, host
/// bits clear. A bare address is a /32 or /128.
pub fn network(text: &str) -> Result<IpNet, String> {
    let (addr_text, len_text) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let Ok(addr) = addr_text.parse::<IpAddr>() else {
        return Err(format!("`{addr_text}` is not an IPv4 or IPv6 address"));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len_text {
        None => max,
        Some(l) => {
            let parsed = if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) {
                l.parse::<u8>().ok()
            } else {
                None
            };
            match parsed {
                Some(n) if n <= max => n,
                _ => {
                    return Err(format!(
                        "prefix length `{l}` of `{text}` is out of range (0 to {max})"
                    ))
                }
            }
        }
    };
    let net = IpNet::new(addr, len)
        .map_err(|_| format!("prefix length of `{text}` is out of range (0 to {max})"))?;
    if net.network() != addr {
        return Err(format!(
            "`{text}` has host bits set; did you mean `{}`?",
            net.trunc()
        ));
    }
    if let IpNet::V6(v6) = net {
        if sluice_runtime::addr::is_ipv4_carrying_range(v6.addr(), len) {
            let v4 = std::net::Ipv4Addr::from(u128::from(v6.addr()) as u32);
            return Err(format!(
                "`{text}` holds IPv6 addresses that carry IPv4, which are matched as their \
                 IPv4 address; write `{v4}/{}` instead",
                len - 96
            ));
        }
    }
    Ok(net)
}

/// Whether `s` is a SPIFFE trust domain: `[a-z0-9._-]+`.
pub fn trust_domain(td: &str) -> Result<(), String> {
    if td.is_empty() {
        return Err("the trust domain is empty".to_string());
    }
    if let Some(c) = td
        .chars()
        .find(|&c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        return Err(format!(
            "trust domain `{td}` holds `{c}` (allowed: `a-z`, `0-9`, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// Whether `seg` is a literal SPIFFE path segment: `[A-Za-z0-9._-]+`, not `.`
/// or `..`.
pub fn segment(seg: &str) -> Result<(), String> {
    if seg.is_empty() {
        return Err("empty path segment".to_string());
    }
    if seg == "." || seg == ".." {
        return Err(format!("path segment `{seg}` is not allowed"));
    }
    if let Some(c) = seg
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "path segment `{seg}` holds `{c}` (allowed: `A-Z`, `a-z`, `0-9`, `.`, `_`, `-`)"
        ));
    }
    Ok(())
}

/// Checks a SPIFFE ID (`wildcards == false`) or identity pattern
/// (`wildcards == true`: a whole segment may be `*`, the last `**`, and
/// `"*"` alone matches every identity).
pub fn identity(text: &str, wildcards: bool) -> Result<(), String> {
    let what = if wildcards {
        "identity pattern"
    } else {
        "identity"
    };
    if wildcards && text == "*" {
        return Ok(());
    }
    let wrap = |why: String| format!("{what} `{text}` is invalid: {why}");
    if text.len() > MAX_IDENTITY_LEN {
        return Err(wrap(format!("it is longer than {MAX_IDENTITY_LEN} bytes")));
    }
    let Some(rest) = text.strip_prefix("spiffe://") else {
        let hint = if wildcards { " (or `*` alone)" } else { "" };
        return Err(wrap(format!("it does not start with `spiffe://`{hint}")));
    };
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if td.contains('@') {
        return Err(wrap("it holds user info".to_string()));
    }
    if td.contains(':') {
        return Err(wrap("the trust domain holds a port".to_string()));
    }
    if td.contains('*') {
        return Err(wrap("the trust domain is always literal".to_string()));
    }
    trust_domain(td).map_err(wrap)?;
    if path.contains('?') || path.contains('#') {
        return Err(wrap("it holds a query or fragment".to_string()));
    }
    if path.is_empty() {
        return Ok(());
    }
    let segs: Vec<&str> = path[1..].split('/').collect();
    let last = segs.len() - 1;
    for (i, seg) in segs.iter().enumerate() {
        if seg.is_empty() {
            let why = if i == last {
                "it ends with `/`"
            } else {
                "it holds an empty path segment"
            };
            return Err(wrap(why.to_string()));
        }
        if wildcards && *seg == "*" {
            continue;
        }
        if wildcards && *seg == "**" {
            if i == last {
                continue;
            }
            return Err(wrap("`**` may only be the last segment".to_string()));
        }
        if seg.contains('*') {
            let why = if wildcards {
                "`*` must stand for a whole segment"
            } else {
                "an identity holds no `*`"
            };
            return Err(wrap(why.to_string()));
        }
        segment(seg).map_err(wrap)?;
    }
    Ok(())
}

/// A host pattern: `*`, `*.name`, or a name. Lowercased, without a trailing
/// dot.
pub fn host_pattern(text: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("host pattern `{text}` is invalid: {why}"));
    if text == "*" {
        return Ok(text.to_string());
    }
    let lower = text.to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    if lower.is_empty() {
        return bad("it is empty");
    }
    let name = lower.strip_prefix("*.").unwrap_or(lower);
    if name.contains('*') {
        return bad("`*` may only be the whole pattern or its first label (`*.example.com`)");
    }
    for c in name.chars() {
        if c.is_whitespace()
            || c.is_control()
            || matches!(c, '/' | ':' | '@' | '?' | '#' | '[' | ']' | '\\')
        {
            let why = if c == ':' {
                "hosts are written without a port (use a `port` statement)".to_string()
            } else {
                format!("`{}` cannot appear in a host", c.escape_debug())
            };
            return bad(&why);
        }
    }
    if name.split('.').any(str::is_empty) {
        return bad("it has an empty label");
    }
    Ok(lower.to_string())
}

/// Whether `name` is an HTTP header name (an RFC 9110 token).
pub fn header_name(name: &str) -> Result<String, String> {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(tchar) {
        return Err(format!("`{name}` is not a valid header name"));
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(exact_path("/a/b"), Ok(PathCond::Exact("/a/b".into())));
        assert!(exact_path("/a//b").is_err());
        assert!(exact_path("a").is_err());
        assert!(exact_path("").is_err());
        assert!(exact_path("/a/../b").is_err());
        assert!(exact_path("/%61").is_err());
        assert!(exact_path("/a%2f").is_err());
        assert!(exact_path("/a?x=1").is_err());
        assert_eq!(exact_path("/a%3A"), Ok(PathCond::Exact("/a%3A".into())));
        assert_eq!(exact_path("/a/"), Ok(PathCond::Exact("/a/".into())));
        assert_eq!(prefix_path("/"), Ok(PathCond::Any));
        assert_eq!(prefix_path("/api"), Ok(PathCond::Prefix("/api".into())));
        assert_eq!(prefix_path("/api/"), Ok(PathCond::Prefix("/api".into())));
        assert!(prefix_path("/api//").is_err());
        assert!(prefix_path("").is_err());
    }

    #[test]
    fn grpc() {
        assert_eq!(
            grpc_path("pkg.Service/Method"),
            Ok(PathCond::Exact("/pkg.Service/Method".into()))
        );
        assert_eq!(
            grpc_path("pkg.Service/*"),
            Ok(PathCond::Prefix("/pkg.Service".into()))
        );
        for bad in [
            "no-slash", "/Method", "pkg.S/", "a/b/c", "*/M", "pkg.S/M*", "pkg.*/M", "../M", "./*",
            "a b/M", "", "p/a?b",
        ] {
            assert!(grpc_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorities() {
        assert_eq!(authority("api"), Ok(("api".into(), 80)));
        assert_eq!(authority("API:80"), Ok(("api".into(), 80)));
        assert_eq!(
            authority("Payments.Prod.:8080"),
            Ok(("payments.prod".into(), 8080))
        );
        assert_eq!(authority("[::1]:8080"), Ok(("::1".into(), 8080)));
        assert_eq!(authority("[::1]"), Ok(("::1".into(), 80)));
        assert_eq!(authority("10.0.0.1:443"), Ok(("10.0.0.1".into(), 443)));
        for bad in [
            "", ":80", "a:0", "a:65536", "a:", "a:x", "a/b", "u@a", "a b", "*.a", "::1", "[::1",
            "[x]:80", "[::1]x", ".", "a:+80",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn endpoints() {
        assert!(endpoint_addr("10.0.0.1:8080").is_ok());
        assert!(endpoint_addr("[::1]:80").is_ok());
        for bad in [
            "10.0.0.1",
            "10.0.0.1:0",
            "10.0.0.1:70000",
            "010.0.0.1:80",
            "[fe80::1%1]:80",
            "a:80",
        ] {
            assert!(endpoint_addr(bad).is_err(), "{bad}");
        }
        assert_eq!(
            endpoint_name("Db.Prod:5432"),
            Ok(Endpoint::Name("db.prod".into(), 5432))
        );
        assert_eq!(
            endpoint_name("10.0.0.1:80"),
            Ok(Endpoint::Addr("10.0.0.1:80".parse().unwrap()))
        );
        for bad in [
            "db", "db:", "db:0", ":80", "a b:80", "a/b:80", "*.a:80", "a::80",
        ] {
            assert!(endpoint_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn networks() {
        assert_eq!(network("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(network("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(network("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert_eq!(network("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        let err = network("10.0.0.1/8").unwrap_err();
        assert!(
            err.contains("host bits") && err.contains("`10.0.0.0/8`"),
            "{err}"
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "010.0.0.0/8",
            "fe80::1%1",
            "x",
            "",
            "10.0.0/8",
        ] {
            assert!(network(bad).is_err(), "{bad}");
        }
        // Section 7, "Addresses": ranges of IPv4-carrying IPv6 addresses.
        let err = network("::ffff:10.0.0.0/104").unwrap_err();
        assert!(err.contains("`10.0.0.0/8`"), "{err}");
        for bad in ["64:ff9b::a9fe:a9fe", "::10.0.0.1", "::/96", "::ffff:0:0/96"] {
            assert!(network(bad).is_err(), "{bad}");
        }
        for good in [
            "::/128",
            "::1",
            "::/0",
            "::/95",
            "64:ff9b::/95",
            "2001:db8::/32",
        ] {
            assert!(network(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn identities() {
        for good in [
            "*",
            "spiffe://prod.example.com/ns/shop/sa/*",
            "spiffe://td/ns/*/sa/web",
            "spiffe://td/**",
            "spiffe://td/ns/a/**",
            "spiffe://td",
            "spiffe://td/A_b-c.d",
        ] {
            assert_eq!(identity(good, true), Ok(()), "{good}");
        }
        for bad in [
            "",
            "**",
            "spiffe://prod.example.com/ns/../x",
            "spiffe://td/ns/./x",
            "spiffe://td/",
            "spiffe://td//a",
            "spiffe://TD/a",
            "spiffe://*/a",
            "spiffe://td:80/a",
            "spiffe://u@td/a",
            "spiffe://td/a?x",
            "spiffe://td/a#x",
            "spiffe://td/**/a",
            "spiffe://td/a*",
            "spiffe:///a",
            "http://td/a",
            "spiffe://td/a b",
        ] {
            assert!(identity(bad, true).is_err(), "{bad}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(MAX_IDENTITY_LEN));
        assert!(identity(&long, true).is_err());
        assert!(identity("spiffe://td/ns/a/sa/*", false).is_err());
        assert!(identity("*", false).is_err());
        assert!(identity("spiffe://td/ns/a/sa/b", false).is_ok());
    }

    #[test]
    fn hosts() {
        assert_eq!(host_pattern("*"), Ok("*".into()));
        assert_eq!(
            host_pattern("*.GoogleAPIs.com."),
            Ok("*.googleapis.com".into())
        );
        assert_eq!(
            host_pattern("api.example.com"),
            Ok("api.example.com".into())
        );
        for bad in [
            "",
            ".",
            "foo.*.com",
            "*foo.com",
            "**",
            "*.",
            "a*",
            "a:443",
            "a b",
            "a..b",
            "*.*.a",
        ] {
            assert!(host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn header_names() {
        assert_eq!(header_name("X-Tenant"), Ok("x-tenant".into()));
        assert!(header_name("").is_err());
        assert!(header_name("a b").is_err());
        assert!(header_name(":authority").is_err());
    }
}
