//! Transparent interception: connections redirected to the proxy by
//! `iptables -j REDIRECT` (written by `sluice init`), their original
//! destination (`SO_ORIGINAL_DST`), and what protocol they speak, read from
//! their first bytes without consuming them.
//!
//! [`sniff`] tells apart:
//!
//! - HTTP/2 with prior knowledge: the client preface
//!   `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`;
//! - HTTP/1: a whole request line, `METHOD SP TARGET SP HTTP/1.x` and a line
//!   end, the method a token. The whole line is required, not only
//!   `METHOD SP`, so that text protocols such as Redis (`SET k v`) or
//!   memcached (`get k`) stay opaque;
//! - TLS: a handshake record (`0x16 0x03 ..`) holding a ClientHello, its
//!   server name taken by [`parse_sni`];
//! - anything else, and a client that sends nothing before the timeout
//!   (server-speaks-first protocols such as SMTP or MySQL): opaque.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The original destination of a connection redirected by iptables
/// (`SO_ORIGINAL_DST`, or `IP6T_SO_ORIGINAL_DST` on an IPv6 socket).
///
/// The socket option is chosen by the connection's local address family (an
/// IPv4-mapped IPv6 address counts as IPv4). A connection that was not
/// redirected (made to the listener's own address) is an error of kind
/// `NotFound`, so the proxy never connects to itself.
pub fn original_dst(stream: &TcpStream) -> io::Result<SocketAddr> {
    let local = stream.local_addr()?;
    let original = original_dst_raw(stream, &local)?;
    if original == local {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the connection to `{local}` was not redirected: its original destination is the listener itself"),
        ));
    }
    Ok(original)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn original_dst_raw(stream: &TcpStream, local: &SocketAddr) -> io::Result<SocketAddr> {
    let socket = socket2::SockRef::from(stream);
    let is_v4 = match local {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(a) => a.ip().to_ipv4_mapped().is_some(),
    };
    let addr = if is_v4 {
        socket.original_dst_v4()?
    } else {
        socket.original_dst_v6()?
    };
    addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "the original destination is not an IP socket address",
        )
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn original_dst_raw(_stream: &TcpStream, _local: &SocketAddr) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "transparent interception needs Linux (`SO_ORIGINAL_DST`)",
    ))
}

/// What a connection's first bytes say it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 prior-knowledge client preface.
    Http2,
    /// A TLS handshake record; `sni` is the ClientHello's `server_name`, if
    /// it has one and it could be parsed.
    Tls {
        /// The requested host name (`server_name`, type `host_name`).
        sni: Option<String>,
    },
    /// Anything else, or nothing sent before the timeout.
    Opaque,
}

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Bytes peeked at first; doubled while the buffer fills, up to [`MAX_PEEK`].
const INITIAL_PEEK: usize = 4096;
/// The most bytes looked at: a full TLS record (16 KiB plus its header) and
/// some more for a ClientHello split over two records.
const MAX_PEEK: usize = 32 * 1024;
/// The longest HTTP method accepted.
const MAX_METHOD: usize = 32;
/// Longest pause between two peeks while waiting for more bytes.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Reads the first bytes of `stream` without consuming them and says what it
/// speaks. Waits until enough bytes have arrived to decide, at most
/// `timeout`; then decides with what arrived (nothing at all is
/// [`Sniffed::Opaque`]). Errors are those of the socket.
pub async fn sniff(stream: &TcpStream, timeout: Duration) -> io::Result<Sniffed> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; INITIAL_PEEK];
    let mut seen = 0;
    let mut pause = Duration::from_millis(1);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(result) => result?,
            Err(_) => return Ok(decide(buf.get(..seen).unwrap_or_default())),
        };
        let data = buf.get(..n).unwrap_or_default();
        // `peek` returns 0 only at end of stream; a full buffer of the
        // largest size cannot grow any more.
        let complete = n == 0 || n >= MAX_PEEK;
        if let Some(sniffed) = classify(data, complete) {
            return Ok(sniffed);
        }
        if n == buf.len() {
            let size = (buf.len() * 2).min(MAX_PEEK);
            buf.resize(size, 0);
            seen = n;
            continue;
        }
        // A peek returns at once while unread bytes are waiting, so wait a
        // little before looking again rather than spinning.
        if n == seen {
            pause = (pause * 2).min(MAX_PAUSE);
        } else {
            pause = Duration::from_millis(1);
        }
        seen = n;
        let now = Instant::now();
        if now >= deadline {
            return Ok(decide(buf.get(..seen).unwrap_or_default()));
        }
        tokio::time::sleep_until((now + pause).min(deadline)).await;
    }
}

/// The verdict on bytes after which no more will come.
fn decide(data: &[u8]) -> Sniffed {
    classify(data, true).unwrap_or(Sniffed::Opaque)
}

/// The verdict on `data`, or `None` when more bytes are needed to decide.
/// With `complete` (no more bytes will come) it always decides.
pub(crate) fn classify(data: &[u8], complete: bool) -> Option<Sniffed> {
    let more = |fallback: Sniffed| if complete { Some(fallback) } else { None };
    let Some(&first) = data.first() else {
        return more(Sniffed::Opaque);
    };
    if first == 0x16 {
        return match (data.get(1), data.get(2)) {
            (Some(&0x03), Some(&minor)) if minor <= 0x04 => match client_hello(data) {
                Ok(sni) => Some(Sniffed::Tls { sni }),
                Err(HelloError::Invalid) => Some(Sniffed::Tls { sni: None }),
                Err(HelloError::Incomplete) => more(Sniffed::Tls { sni: None }),
            },
            (Some(&0x03), None) | (None, _) => more(Sniffed::Opaque),
            _ => Some(Sniffed::Opaque),
        };
    }
    if data.starts_with(H2_PREFACE) {
        return Some(Sniffed::Http2);
    }
    if H2_PREFACE.starts_with(data) {
        return more(Sniffed::Opaque);
    }
    match http1_request_line(data) {
        Some(true) => Some(Sniffed::Http1),
        Some(false) => Some(Sniffed::Opaque),
        None => more(Sniffed::Opaque),
    }
}

/// Whether `data` starts with an HTTP/1.x request line, as `httparse`
/// (hyper's parser) reads it: `Some(true)` yes, `Some(false)` no, `None`
/// not known yet. The method must start the bytes (no empty lines before
/// it) and be at most [`MAX_METHOD`] bytes long.
fn http1_request_line(data: &[u8]) -> Option<bool> {
    let method = data.iter().take_while(|&&b| is_tchar(b)).count();
    if method > MAX_METHOD || (method == 0 && !data.is_empty()) {
        return Some(false);
    }
    // Only the request line: the headers after it are hyper's to judge.
    let line_end = data.iter().position(|&b| b == b'\n');
    let line = line_end.map_or(data, |end| &data[..=end]);
    match httparse::Request::new(&mut []).parse(line) {
        Ok(httparse::Status::Partial) if line_end.is_none() => None,
        Ok(_) => Some(true),
        Err(_) => Some(false),
    }
}

/// A token character (RFC 9110, section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The server name a TLS ClientHello asks for: `data` starts with the TLS
/// record that carries it (a ClientHello split over several handshake
/// records is put back together). `None` when there is no `server_name`
/// extension with a `host_name` entry, when the bytes are not a ClientHello,
/// are cut short or are malformed, or when the name is not a plausible DNS
/// name (ASCII letters, digits, `-`, `_` and `.`). Never panics.
pub fn parse_sni(client_hello: &[u8]) -> Option<String> {
    self::client_hello(client_hello).ok().flatten()
}

/// Why a ClientHello gave no answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum HelloError {
    /// The bytes end before the handshake message does.
    Incomplete,
    /// Not a ClientHello, or a malformed one.
    Invalid,
}

const RECORD_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST_NAME: u8 = 0;

/// The server name of the ClientHello `data` starts with (records
/// included); `Ok(None)` for a well-formed ClientHello without one.
pub(crate) fn client_hello(data: &[u8]) -> Result<Option<String>, HelloError> {
    let message = handshake_message(data)?;
    let mut r = Reader(&message);
    if r.u8() != Some(HANDSHAKE_CLIENT_HELLO) {
        return Err(HelloError::Invalid);
    }
    let body = r.vec24().ok_or(HelloError::Invalid)?;
    let mut r = Reader(body);
    let hello = (|| {
        r.take(2)?; // legacy_version
        r.take(32)?; // random
        r.vec8()?; // legacy_session_id
        r.vec16()?; // cipher_suites
        r.vec8()?; // legacy_compression_methods
        if r.0.is_empty() {
            return Some(None); // no extensions at all
        }
        let mut extensions = Reader(r.vec16()?);
        while !extensions.0.is_empty() {
            let kind = extensions.u16()?;
            let body = extensions.vec16()?;
            if kind == EXTENSION_SERVER_NAME {
                return Some(server_name(body));
            }
        }
        Some(None)
    })();
    hello.ok_or(HelloError::Invalid)
}

/// The `host_name` of a `server_name` extension body (RFC 6066, section 3).
fn server_name(body: &[u8]) -> Option<String> {
    let mut r = Reader(body);
    let mut list = Reader(r.vec16()?);
    while !list.0.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == NAME_TYPE_HOST_NAME {
            let plausible = !name.is_empty()
                && name
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            return plausible
                .then(|| std::str::from_utf8(name).ok().map(str::to_owned))
                .flatten();
        }
    }
    None
}

/// The first handshake message, from one record or put together from
/// several consecutive handshake records.
pub(crate) fn handshake_message(data: &[u8]) -> Result<Cow<'_, [u8]>, HelloError> {
    let mut records = Reader(data);
    let mut joined: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    loop {
        let header = records.take(5).ok_or(HelloError::Incomplete)?;
        let [kind, major, _minor, hi, lo] =
            <[u8; 5]>::try_from(header).map_err(|_| HelloError::Invalid)?;
        if kind != RECORD_HANDSHAKE || major != 0x03 {
            return Err(HelloError::Invalid);
        }
        let length = usize::from(u16::from_be_bytes([hi, lo]));
        if length == 0 || length > (1 << 14) + 2048 {
            return Err(HelloError::Invalid);
        }
        let fragment = records.take(length).ok_or(HelloError::Incomplete)?;
        joined = if joined.is_empty() {
            Cow::Borrowed(fragment)
        } else {
            let mut owned = joined.into_owned();
            owned.extend_from_slice(fragment);
            Cow::Owned(owned)
        };
        if let Some(&[_, a, b, c]) = joined.get(..4) {
            let needed = 4 + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c));
            if joined.len() >= needed {
                return Ok(match joined {
                    Cow::Borrowed(j) => Cow::Borrowed(j.get(..needed).unwrap_or_default()),
                    Cow::Owned(mut j) => {
                        j.truncate(needed);
                        Cow::Owned(j)
                    }
                });
            }
        }
    }
}

/// A cursor over bytes whose reads fail, rather than panic, past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    fn vec24(&mut self) -> Option<&'a [u8]> {
        let [a, b, c] = <[u8; 3]>::try_from(self.take(3)?).ok()?;
        self.take(usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    /// A real ClientHello from rustls for `host`.
    fn rustls_client_hello(host: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        while conn.wants_write() {
            conn.write_tls(&mut out).unwrap();
        }
        out
    }

    /// A ClientHello built by hand: TLS 1.2 record, given extensions.
    fn hello_with_extensions(extensions: &[u8]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
        let mut message = vec![HANDSHAKE_CLIENT_HELLO, 0];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&body);
        let mut record = vec![RECORD_HANDSHAKE, 3, 1];
        record.extend_from_slice(&(message.len() as u16).to_be_bytes());
        record.extend_from_slice(&message);
        record
    }

    fn sni_extension(entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut list = Vec::new();
        for (kind, name) in entries {
            list.push(*kind);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut ext = EXTENSION_SERVER_NAME.to_be_bytes().to_vec();
        ext.extend_from_slice(&((list.len() + 2) as u16).to_be_bytes());
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn sni_of_a_real_client_hello() {
        let hello = rustls_client_hello("api.example.com");
        assert_eq!(hello[0], 0x16);
        assert_eq!(parse_sni(&hello).as_deref(), Some("api.example.com"));
        assert_eq!(
            classify(&hello, false),
            Some(Sniffed::Tls {
                sni: Some("api.example.com".into())
            })
        );
        // Bytes after the ClientHello (a client that sent more) do not matter.
        let mut more = hello.clone();
        more.extend_from_slice(b"\x17\x03\x03\x00\x05hello");
        assert_eq!(parse_sni(&more).as_deref(), Some("api.example.com"));
    }

    #[test]
    fn a_client_hello_cut_anywhere_never_panics_and_is_incomplete() {
        let hello = rustls_client_hello("api.example.com");
        for len in 0..hello.len() {
            let cut = &hello[..len];
            assert_eq!(parse_sni(cut), None, "cut at {len}");
            assert_eq!(
                client_hello(cut),
                Err(HelloError::Incomplete),
                "cut at {len}"
            );
            let sniffed = classify(cut, false);
            assert!(sniffed.is_none(), "cut at {len}: {sniffed:?}");
            let decided = decide(cut);
            let expected = if len < 3 {
                Sniffed::Opaque
            } else {
                Sniffed::Tls { sni: None }
            };
            assert_eq!(decided, expected, "cut at {len}");
        }
    }

    #[test]
    fn a_client_hello_with_lengths_cut_short_inside_is_invalid_not_a_panic() {
        // The record and handshake lengths shrunk, leaving inner lengths
        // pointing past the end.
        let hello = rustls_client_hello("api.example.com");
        for shrink in 1..hello.len() - 9 {
            let mut h = hello.clone();
            let record = u16::from_be_bytes([h[3], h[4]]) as usize - shrink;
            h[3..5].copy_from_slice(&(record as u16).to_be_bytes());
            let message = record - 4;
            h[6..9].copy_from_slice(&[(message >> 16) as u8, (message >> 8) as u8, message as u8]);
            h.truncate(5 + record);
            let _ = parse_sni(&h);
        }
    }

    #[test]
    fn garbage_and_mutations_never_panic() {
        let hello = rustls_client_hello("api.example.com");
        // Every byte replaced by a few values, one at a time.
        for i in 0..hello.len() {
            for v in [0x00, 0x01, 0x7f, 0x80, 0xff] {
                let mut h = hello.clone();
                h[i] = v;
                let _ = parse_sni(&h);
                let _ = classify(&h, false);
                let _ = classify(&h, true);
            }
        }
        // Pseudo-random bytes behind a TLS-looking header.
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let len = rng.usize(0..600);
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if bytes.len() > 6 && rng.bool() {
                bytes[..6].copy_from_slice(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]);
            }
            let _ = parse_sni(&bytes);
            let _ = classify(&bytes, rng.bool());
        }
        assert_eq!(parse_sni(b""), None);
        assert_eq!(parse_sni(b"GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_sni(&[0x16, 0x03, 0x01, 0x00, 0x00]), None);
        assert_eq!(parse_sni(&[0x16, 0x03, 0x01, 0xff, 0xff]), None);
    }

    #[test]
    fn handmade_client_hellos() {
        let ext = sni_extension(&[(0, b"Svc.Example.com")]);
        assert_eq!(
            parse_sni(&hello_with_extensions(&ext)).as_deref(),
            Some("Svc.Example.com")
        );
        // No extensions, other extensions, an empty list: no name.
        assert_eq!(client_hello(&hello_with_extensions(&[])), Ok(None));
        assert_eq!(
            client_hello(&hello_with_extensions(&[0, 10, 0, 2, 0, 29])),
            Ok(None)
        );
        assert_eq!(parse_sni(&hello_with_extensions(&sni_extension(&[]))), None);
        // Another name type first, then a host name.
        let ext = sni_extension(&[(7, b"x"), (0, b"b.example")]);
        assert_eq!(
            parse_sni(&hello_with_extensions(&ext)).as_deref(),
            Some("b.example")
        );
        // Names that are not DNS names are refused.
        for bad in [&b""[..], b"a b", b"a\0b", b"\xc3\xa9.example", b"a/b"] {
            let ext = sni_extension(&[(0, bad)]);
            assert_eq!(parse_sni(&hello_with_extensions(&ext)), None, "{bad:?}");
        }
        // A ServerHello (type 2) is not a ClientHello.
        let mut h = hello_with_extensions(&ext);
        h[5] = 2;
        assert_eq!(client_hello(&h), Err(HelloError::Invalid));
        assert_eq!(classify(&h, false), Some(Sniffed::Tls { sni: None }));
    }

    #[test]
    fn a_client_hello_split_over_records() {
        let hello = rustls_client_hello("split.example.com");
        let message = &hello[5..];
        let mut split = Vec::new();
        for chunk in message.chunks(100) {
            split.extend_from_slice(&[0x16, 0x03, 0x03]);
            split.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            split.extend_from_slice(chunk);
        }
        assert_eq!(parse_sni(&split).as_deref(), Some("split.example.com"));
        for len in 0..split.len() {
            assert_eq!(
                client_hello(&split[..len]),
                Err(HelloError::Incomplete),
                "{len}"
            );
        }
        // A record of another type in between is not a handshake.
        let mut mixed = split[..105].to_vec();
        mixed.extend_from_slice(&[0x17, 0x03, 0x03, 0x00, 0x01, 0x00]);
        assert_eq!(client_hello(&mixed), Err(HelloError::Invalid));
    }

    #[test]
    fn classify_http() {
        for line in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"POST /x?y=1 HTTP/1.0\r\n",
            b"OPTIONS * HTTP/1.1\n",
            b"CONNECT a.example:443 HTTP/1.1\r\n",
            b"get http://a/ HTTP/1.1\r\n",
            b"PRI / HTTP/1.1\r\n",
        ] {
            assert_eq!(classify(line, false), Some(Sniffed::Http1), "{line:?}");
            // Every prefix waits for more, and decides opaque at the end.
            for len in 0..line.iter().position(|&b| b == b'\n').unwrap() {
                let prefix = &line[..len];
                assert_eq!(classify(prefix, false), None, "{prefix:?}");
                assert_eq!(classify(prefix, true), Some(Sniffed::Opaque), "{prefix:?}");
            }
        }
        assert_eq!(classify(H2_PREFACE, false), Some(Sniffed::Http2));
        for len in 0..H2_PREFACE.len() {
            assert_eq!(classify(&H2_PREFACE[..len], false), None);
            assert_eq!(classify(&H2_PREFACE[..len], true), Some(Sniffed::Opaque));
        }
        let mut frames = H2_PREFACE.to_vec();
        frames.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(classify(&frames, false), Some(Sniffed::Http2));
    }

    #[test]
    fn classify_opaque() {
        for bytes in [
            &b"SET key value\r\n"[..],
            b"get key\r\n",
            b"PING\r\n",
            b"ping\n",
            b" GET / HTTP/1.1\r\n",
            b"GET  / HTTP/1.1\r\n",
            b"GET / HTTP/2.0\r\n",
            b"GET / HTTP/1.x\r\n",
            b"GET / HTTP/1.1 \r\n",
            b"GET /\r\n",
            b"\x00\x00\x00\x01",
            b"\x16\x01\x00",
            b"EHLO x\r\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            &[b'A'; 40],
        ] {
            assert_eq!(classify(bytes, false), Some(Sniffed::Opaque), "{bytes:?}");
        }
        assert_eq!(classify(b"", false), None);
        assert_eq!(classify(b"", true), Some(Sniffed::Opaque));
        assert_eq!(classify(b"GET", true), Some(Sniffed::Opaque));
    }

    /// A connected pair over loopback: (the client's end, the accepted end).
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    async fn sniff_bytes(chunks: &[&[u8]], gap: Duration, timeout: Duration) -> (Sniffed, Vec<u8>) {
        let (mut client, server) = pair().await;
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        let writer = tokio::spawn(async move {
            for chunk in chunks {
                client.write_all(&chunk).await.unwrap();
                client.flush().await.unwrap();
                tokio::time::sleep(gap).await;
            }
            client
        });
        let sniffed = sniff(&server, timeout).await.unwrap();
        let _client = writer.await.unwrap();
        // Nothing was consumed: the bytes are all still there to read.
        let mut server = server;
        let mut buf = vec![0; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), async {
            use tokio::io::AsyncReadExt;
            server.read(&mut buf).await.unwrap()
        })
        .await
        .unwrap_or(0);
        buf.truncate(n);
        (sniffed, buf)
    }

    #[tokio::test]
    async fn sniffs_over_loopback_without_consuming() {
        let second = Duration::from_secs(5);
        let request = b"GET /x HTTP/1.1\r\nHost: a.example\r\n\r\n";
        let (s, read) = sniff_bytes(&[request], Duration::ZERO, second).await;
        assert_eq!(s, Sniffed::Http1);
        assert_eq!(read, request);

        let (s, read) = sniff_bytes(&[H2_PREFACE], Duration::ZERO, second).await;
        assert_eq!(s, Sniffed::Http2);
        assert_eq!(read, H2_PREFACE);

        let hello = rustls_client_hello("api.example.com");
        let (s, read) = sniff_bytes(&[&hello], Duration::ZERO, second).await;
        assert_eq!(
            s,
            Sniffed::Tls {
                sni: Some("api.example.com".into())
            }
        );
        assert_eq!(read, hello);

        let (s, _) = sniff_bytes(&[b"\x00\x01binary"], Duration::ZERO, second).await;
        assert_eq!(s, Sniffed::Opaque);
    }

    #[tokio::test]
    async fn waits_for_bytes_that_arrive_in_pieces() {
        let second = Duration::from_secs(5);
        let gap = Duration::from_millis(30);
        let (s, read) =
            sniff_bytes(&[b"GE", b"T /pa", b"th HTTP/1", b".1\r\n\r\n"], gap, second).await;
        assert_eq!(s, Sniffed::Http1);
        assert_eq!(read, b"GET /path HTTP/1.1\r\n\r\n");

        let hello = rustls_client_hello("pieces.example.com");
        let (a, b) = hello.split_at(3);
        let (b, c) = b.split_at(100);
        let (s, _) = sniff_bytes(&[a, b, c], gap, second).await;
        assert_eq!(
            s,
            Sniffed::Tls {
                sni: Some("pieces.example.com".into())
            }
        );

        let (s, _) = sniff_bytes(&[b"PRI * HTTP/2.0\r\n", b"\r\nSM\r\n\r\n"], gap, second).await;
        assert_eq!(s, Sniffed::Http2);
    }

    #[tokio::test]
    async fn a_silent_client_is_opaque_after_the_timeout() {
        let (_client, server) = pair().await;
        let started = std::time::Instant::now();
        let s = sniff(&server, Duration::from_millis(150)).await.unwrap();
        assert_eq!(s, Sniffed::Opaque);
        assert!(started.elapsed() >= Duration::from_millis(140));

        // A partial request line, then silence: decided at the timeout.
        let (s, _) = sniff_bytes(&[b"GET /"], Duration::ZERO, Duration::from_millis(150)).await;
        assert_eq!(s, Sniffed::Opaque);
        let (s, _) = sniff_bytes(
            &[b"\x16\x03\x01\x02"],
            Duration::ZERO,
            Duration::from_millis(150),
        )
        .await;
        assert_eq!(s, Sniffed::Tls { sni: None });
    }

    #[tokio::test]
    async fn a_closed_client_is_decided_at_once() {
        let (client, server) = pair().await;
        drop(client);
        let started = std::time::Instant::now();
        let s = sniff(&server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(s, Sniffed::Opaque);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn original_dst_of_a_connection_not_redirected_is_an_error() {
        let (_client, server) = pair().await;
        // Without a REDIRECT rule the kernel reports the listener itself
        // (or no conntrack entry at all): never an address to connect to.
        assert!(original_dst(&server).is_err());
    }
}
