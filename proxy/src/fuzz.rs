//! Plain entry points for the fuzz targets in `fuzz/` (and the corpus
//! replays in `proxy/tests/fuzz_corpus.rs`), one per parser of bytes that
//! come from outside: each takes arbitrary bytes, must never panic, and
//! asserts what must hold of the parser it drives.

use crate::framing::FramingWatch;
use crate::outbound::authority_with_port;
use crate::outbound::transparent::{self, classify, handshake_message, parse_sni, Sniffed};
use sluice_runtime::Authority;
use std::net::{Ipv4Addr, SocketAddr};

/// Request framing (`FramingWatch`): the first byte picks a read size,
/// the rest is what a client sends. Fed whole, in pieces of that size and
/// (up to 1 KiB) a byte at a time, the watch flags the same: how reads
/// split a stream must not change what it sees. (Each run ends with an
/// empty line in a read of its own: a head is judged when a line end
/// arrives, and a garbage head without one may be judged in one split and
/// still be pending in another.) A head limit of the first byte's value
/// must not panic either.
pub fn framing(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    const END: &[u8] = b"\r\n\r\n";
    // No head can exceed this limit, however the stream is split.
    let limit = stream.len() + END.len() + 1;
    let flagged = |step: usize| {
        let mut watch = FramingWatch::new(limit);
        for piece in stream.chunks(step) {
            watch.feed(piece);
        }
        watch.feed(END);
        watch.ambiguous()
    };
    let whole = flagged(stream.len().max(1));
    let step = usize::from(first % 64) + 1;
    assert_eq!(flagged(step), whole, "fed in pieces of {step} bytes");
    if stream.len() <= 1024 {
        assert_eq!(flagged(1), whole, "fed a byte at a time");
    }
    let mut small = FramingWatch::new(usize::from(first));
    small.feed(stream);
    let _ = small.ambiguous();
}

/// Protocol sniffing of a transparent connection's first bytes: all of
/// them always decide; a verdict reached on a prefix (while more bytes may
/// come) is the verdict on the whole; a TLS verdict's server name is
/// [`parse_sni`]'s.
pub fn sniff(data: &[u8]) {
    let Some(verdict) = classify(data, true) else {
        panic!("bytes after which none come must decide");
    };
    let step = (data.len() / 64).max(1);
    let prefixes = (0..data.len().min(256)).chain((256..data.len()).step_by(step));
    for n in prefixes.chain([data.len()]) {
        if let Some(early) = classify(&data[..n], false) {
            assert_eq!(early, verdict, "decided on the first {n} bytes");
        }
    }
    if let Sniffed::Tls { sni: Some(name) } = &verdict {
        assert_eq!(parse_sni(data).as_ref(), Some(name));
        assert_plausible_name(name);
    }
}

/// The ClientHello reader ([`parse_sni`]): a server name it gives is a
/// plausible DNS name, and the same handshake message split into records
/// of any size gives the same answer.
pub fn client_hello(data: &[u8]) {
    if let Some(name) = parse_sni(data) {
        assert_plausible_name(&name);
    }
    let Ok(message) = handshake_message(data) else {
        return;
    };
    let answer = transparent::client_hello(data);
    let version = [
        data.get(1).copied().unwrap_or(3),
        data.get(2).copied().unwrap_or(1),
    ];
    for size in [1, 3, 64, 1 << 14] {
        let mut records = Vec::with_capacity(message.len() + 5 * message.len().div_ceil(size));
        for fragment in message.chunks(size) {
            let len = u16::try_from(fragment.len()).unwrap_or(u16::MAX);
            records.extend_from_slice(&[0x16, version[0], version[1]]);
            records.extend_from_slice(&len.to_be_bytes());
            records.extend_from_slice(fragment);
        }
        assert_eq!(
            transparent::client_hello(&records),
            answer,
            "the handshake message in records of {size} bytes"
        );
    }
}

fn assert_plausible_name(name: &str) {
    assert!(!name.is_empty());
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{name:?}"
    );
}

/// Authority parsing on the outbound side ([`Authority::split`], and the
/// original port a transparent connection adds): the first two bytes are
/// an original destination port, the rest the authority a request names.
/// A split authority written back splits the same; adding the original
/// port keeps the host and sets the port only when none was named.
pub fn authority(data: &[u8]) {
    let Some((port, named)) = data.split_first_chunk::<2>() else {
        return;
    };
    let original = SocketAddr::from((Ipv4Addr::LOCALHOST, u16::from_be_bytes(*port)));
    assert_eq!(
        authority_with_port(None, Some(original)),
        Some(original.to_string())
    );
    let Ok(named) = std::str::from_utf8(named) else {
        return;
    };
    assert_eq!(
        authority_with_port(Some(named.to_owned()), None).as_deref(),
        Some(named)
    );
    let with_port = authority_with_port(Some(named.to_owned()), Some(original));
    let Some(split) = Authority::split(named) else {
        assert_eq!(
            with_port.as_deref(),
            Some(named),
            "an unsplittable authority is kept"
        );
        return;
    };
    let (host, port) = (split.host, split.port_or_80());
    // A bracketed host that holds brackets itself (`[[x]`) does not write
    // back; the runtime refuses such an authority (not an IPv6 literal), so
    // no request gets this far with one.
    if !host.contains(['[', ']']) {
        let written = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        assert_eq!(host_and_port(&written), Some((host, port)), "{written:?}");
    }
    let want = split.port.unwrap_or(original.port());
    let with_port = with_port.unwrap_or_default();
    assert_eq!(
        host_and_port(&with_port),
        Some((host, want)),
        "{with_port:?}"
    );
}

/// The host and port (80 when unwritten) of a split authority.
fn host_and_port(authority: &str) -> Option<(&str, u16)> {
    Authority::split(authority).map(|split| (split.host, split.port_or_80()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_checks_split_invariance() {
        let smuggle = b"\x05POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        framing(smuggle);
        let mut watch = FramingWatch::new(1 << 10);
        watch.feed(&smuggle[1..]);
        assert!(watch.ambiguous(), "the input the check runs on is flagged");
    }

    #[test]
    fn sniff_decides_prefixes_consistently() {
        sniff(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        sniff(b"SET k v\r\n");
        sniff(b"");
        assert_eq!(classify(b"GET / HTTP/1.1\r\n", false), Some(Sniffed::Http1));
    }

    #[test]
    fn authority_round_trips() {
        for named in [
            "a.example:8080",
            "a.example",
            "[::1]",
            "[::1]:9",
            "a:b",
            "",
            "a]:1",
        ] {
            let mut data = 443u16.to_be_bytes().to_vec();
            data.extend_from_slice(named.as_bytes());
            authority(&data);
        }
        assert_eq!(
            authority_with_port(
                Some("a.example".into()),
                Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 443)))
            ),
            Some("a.example:443".into())
        );
    }
}
