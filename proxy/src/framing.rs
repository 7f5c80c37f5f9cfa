//! A watch on HTTP/1.1 request framing, for refusing request smuggling.
//!
//! hyper follows RFC 9112 and quietly resolves ambiguous framing (it drops
//! `Content-Length` when `Transfer-Encoding` is present, and merges equal
//! duplicate lengths), so the parsed request no longer shows it. The
//! proxy refuses such requests instead, as the ambiguity is the mark of a
//! smuggling attempt. [`FramingWatch`] follows the raw bytes as the client
//! sends them: it reads each request head, flags ambiguous framing, and
//! skips the body by its length or chunks to find the next head. It is an
//! explicit state machine fed with bytes; it does no I/O.
//!
//! Heads are read with hyper's own tokenizer (`httparse`, in the
//! configuration hyper uses, with hyper's limit of 100 headers), so a head
//! ends where hyper sees it end: bare-LF line ends, leading empty lines and
//! pipelined requests split anywhere across reads are read alike by both.
//! Chunked bodies are followed as strictly as hyper decodes them (CRLF
//! only, sizes within 64 bits). Bytes the watch cannot follow are flagged
//! as ambiguous rather than ignored: the watch never stops watching a
//! connection hyper could still read requests from.

/// The most headers hyper reads in a request head (its default).
const MAX_HEADERS: usize = 100;
/// hyper's limit on the bytes of chunk extensions in one body.
const MAX_EXTENSION_BYTES: u64 = 16 * 1024;
/// hyper's limit on the bytes of chunked trailers.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Where the watch is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a request head (in `FramingWatch::head`).
    Head,
    /// Skipping a body of known length.
    Fixed(u64),
    /// Expecting the first hex digit of a chunk size.
    ChunkStart,
    /// In a chunk size (the size so far).
    ChunkSize(u64),
    /// Blanks after a chunk size.
    ChunkBlanks(u64),
    /// In a chunk extension, until CR.
    ChunkExtension(u64),
    /// Expecting the LF ending a chunk-size line.
    ChunkSizeLf(u64),
    /// Skipping chunk data.
    ChunkData(u64),
    /// Expecting the CR after chunk data.
    ChunkDataCr,
    /// Expecting the LF after chunk data.
    ChunkDataLf,
    /// After the last chunk or a trailer line: CR ends the body, anything
    /// else starts a trailer line.
    TrailerStart,
    /// In a trailer line, until CR.
    Trailer,
    /// Expecting the LF ending a trailer line.
    TrailerLf,
    /// Expecting the LF ending the body.
    EndLf,
    /// Not HTTP/1.1 framing (HTTP/2 prior knowledge), or lost: stop.
    Off,
}

/// Follows request framing over a connection's incoming bytes.
#[derive(Debug)]
pub(crate) struct FramingWatch {
    state: State,
    /// The head being collected; kept across requests to reuse its buffer.
    head: Vec<u8>,
    max_head: usize,
    /// No head has been read yet (only the first may be the HTTP/2 preface).
    first: bool,
    ambiguous: bool,
    extension_bytes: u64,
    trailer_bytes: usize,
}

/// How a request head frames its body.
#[derive(Debug, PartialEq, Eq)]
struct Framing {
    ambiguous: bool,
    body: Body,
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    Empty,
    Fixed(u64),
    Chunked,
    /// A length hyper refuses too.
    Invalid,
}

impl FramingWatch {
    /// A watch for a new connection; heads longer than `max_head` (the
    /// size of hyper's read buffer) count as ambiguous.
    pub(crate) fn new(max_head: usize) -> Self {
        FramingWatch {
            state: State::Head,
            head: Vec::new(),
            max_head,
            first: true,
            ambiguous: false,
            extension_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Whether some request so far had ambiguous framing, or the bytes
    /// could not be followed as HTTP/1.1.
    pub(crate) fn ambiguous(&self) -> bool {
        self.ambiguous
    }

    /// The bytes could not be followed: refuse what comes, stop watching.
    fn lost(&mut self) {
        self.ambiguous = true;
        self.state = State::Off;
        self.head = Vec::new();
    }

    /// Feeds bytes read from the client.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while let Some((&byte, rest)) = data.split_first() {
            match self.state {
                State::Off => return,
                State::Head => {
                    data = self.feed_head(data);
                    continue;
                }
                State::Fixed(n) => {
                    let take = n.min(data.len() as u64);
                    data = &data[take as usize..];
                    self.state = if n == take {
                        self.next_head()
                    } else {
                        State::Fixed(n - take)
                    };
                    continue;
                }
                State::ChunkData(n) => {
                    let take = n.min(data.len() as u64);
                    data = &data[take as usize..];
                    self.state = if n == take {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData(n - take)
                    };
                    continue;
                }
                State::ChunkStart => match hex(byte) {
                    Some(d) => self.state = State::ChunkSize(u64::from(d)),
                    None => self.lost(),
                },
                State::ChunkSize(size) => match byte {
                    b'\t' | b' ' => self.state = State::ChunkBlanks(size),
                    b';' => self.state = State::ChunkExtension(size),
                    b'\r' => self.state = State::ChunkSizeLf(size),
                    _ => match hex(byte)
                        .and_then(|d| size.checked_mul(16)?.checked_add(u64::from(d)))
                    {
                        Some(size) => self.state = State::ChunkSize(size),
                        None => self.lost(),
                    },
                },
                State::ChunkBlanks(size) => match byte {
                    b'\t' | b' ' => {}
                    b';' => self.state = State::ChunkExtension(size),
                    b'\r' => self.state = State::ChunkSizeLf(size),
                    _ => self.lost(),
                },
                State::ChunkExtension(size) => match byte {
                    b'\r' => self.state = State::ChunkSizeLf(size),
                    b'\n' => self.lost(),
                    _ => {
                        self.extension_bytes += 1;
                        if self.extension_bytes >= MAX_EXTENSION_BYTES {
                            self.lost();
                        }
                    }
                },
                State::ChunkSizeLf(size) => match (byte, size) {
                    (b'\n', 0) => self.state = State::TrailerStart,
                    (b'\n', n) => self.state = State::ChunkData(n),
                    _ => self.lost(),
                },
                State::ChunkDataCr => match byte {
                    b'\r' => self.state = State::ChunkDataLf,
                    _ => self.lost(),
                },
                State::ChunkDataLf => match byte {
                    b'\n' => self.state = State::ChunkStart,
                    _ => self.lost(),
                },
                State::TrailerStart => match byte {
                    b'\r' => self.state = State::EndLf,
                    _ => {
                        self.state = State::Trailer;
                        self.count_trailer_byte();
                    }
                },
                State::Trailer => {
                    if byte == b'\r' {
                        self.state = State::TrailerLf;
                    }
                    self.count_trailer_byte();
                }
                State::TrailerLf => match byte {
                    b'\n' => self.state = State::TrailerStart,
                    _ => self.lost(),
                },
                State::EndLf => match byte {
                    b'\n' => self.state = self.next_head(),
                    _ => self.lost(),
                },
            }
            data = rest;
        }
    }

    fn count_trailer_byte(&mut self) {
        self.trailer_bytes += 1;
        if self.trailer_bytes >= MAX_TRAILER_BYTES {
            self.lost();
        }
    }

    /// The state after a body ended.
    fn next_head(&mut self) -> State {
        self.extension_bytes = 0;
        self.trailer_bytes = 0;
        State::Head
    }

    /// Adds bytes to the head being collected; when it is complete, checks
    /// it and picks how its body is framed. Returns the bytes after the head.
    fn feed_head<'d>(&mut self, data: &'d [u8]) -> &'d [u8] {
        let before = self.head.len();
        // Never buffer more than one byte past the limit.
        let take = data.len().min(self.max_head.saturating_sub(before) + 1);
        let (taken, after) = data.split_at(take);
        let may_be_preface =
            self.first && (taken.starts_with(H2_PREFACE) || H2_PREFACE.starts_with(taken));
        if before == 0 && !may_be_preface {
            // A head that arrives whole in one read (the usual case) is
            // read where it lies, without a copy; the bytes are those the
            // buffer would hold, so the verdict is the same. Anything else
            // (a partial head, bytes that are no head) goes the way below,
            // unchanged: bytes without a line end are not judged yet.
            if let Ok(Some((end, framing))) = parse_head(taken) {
                return self.head_read(framing, &data[end..]);
            }
        }
        self.head.extend_from_slice(taken);
        if self.first {
            if self.head.starts_with(H2_PREFACE) {
                // HTTP/2 with prior knowledge: no HTTP/1.1 framing follows.
                self.state = State::Off;
                self.head = Vec::new();
                return &[];
            }
            if H2_PREFACE.starts_with(&self.head) {
                return after;
            }
        }
        // A head ends with a line end: parse only when one came.
        if !taken.contains(&b'\n') {
            if self.head.len() > self.max_head {
                self.lost();
            }
            return after;
        }
        match parse_head(&self.head) {
            // The bytes of this read past the head belong to the body.
            Ok(Some((end, framing))) => self.head_read(framing, &data[end - before..]),
            Ok(None) if self.head.len() <= self.max_head => after,
            // Too large, too many headers, or not a request head: hyper
            // refuses it too; nothing after it can be followed.
            Ok(None) | Err(_) => {
                self.lost();
                &[]
            }
        }
    }
}

impl FramingWatch {
    /// A head was read, framed as `framing`; `rest` (the bytes after it)
    /// is returned to be fed as its body.
    fn head_read<'d>(&mut self, framing: Framing, rest: &'d [u8]) -> &'d [u8] {
        self.first = false;
        self.head.clear();
        self.ambiguous |= framing.ambiguous;
        self.state = match framing.body {
            Body::Empty => self.next_head(),
            Body::Fixed(n) => State::Fixed(n),
            Body::Chunked => State::ChunkStart,
            Body::Invalid => {
                self.lost();
                return &[];
            }
        };
        rest
    }
}

/// Reads a request head with hyper's tokenizer: its length and framing
/// when complete, `None` when more bytes are needed.
fn parse_head(bytes: &[u8]) -> Result<Option<(usize, Framing)>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    Ok(match request.parse(bytes)? {
        httparse::Status::Complete(end) => Some((end, framing(request.headers))),
        httparse::Status::Partial => None,
    })
}

/// How the headers of a complete head frame its body, and whether that is
/// ambiguous: both `Content-Length` and `Transfer-Encoding`, or several
/// lengths (in several headers or one comma-separated list).
fn framing(headers: &[httparse::Header<'_>]) -> Framing {
    let mut lengths = 0usize;
    let mut length = None;
    let mut chunked = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            lengths += h.value.split(|b| *b == b',').count();
            length = Some(digits(trim(h.value)));
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        }
    }
    let ambiguous = lengths > 1 || (chunked && lengths > 0);
    let body = match (chunked, length) {
        (true, _) => Body::Chunked,
        (false, None) => Body::Empty,
        (false, Some(Some(0))) => Body::Empty,
        (false, Some(Some(n))) => Body::Fixed(n),
        (false, Some(None)) => Body::Invalid,
    };
    Framing { ambiguous, body }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A decimal length as hyper reads one: digits only, within 64 bits.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))
            .flatten()
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(chunks: &[&[u8]]) -> bool {
        let mut w = FramingWatch::new(64 * 1024);
        for c in chunks {
            w.feed(c);
        }
        w.ambiguous()
    }

    /// The watch's verdict on `stream` fed whole, and split at every byte.
    fn both_ways(stream: &[u8]) -> bool {
        let whole = watch(&[stream]);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(whole, watch(&bytes), "{}", String::from_utf8_lossy(stream));
        whole
    }

    /// `stream` with every CRLF in its heads turned into a bare LF.
    fn bare_lf(stream: &[u8]) -> Vec<u8> {
        String::from_utf8_lossy(stream)
            .replace("\r\n", "\n")
            .into_bytes()
    }

    #[test]
    fn ambiguous_heads_are_flagged() {
        assert!(watch(&[
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(watch(&[
            b"POST / HTTP/1.1\r\ncontent-length: 4\r\nCONTENT-LENGTH: 4\r\n\r\nabcd"
        ]));
        assert!(watch(&[
            b"POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\nabcd"
        ]));
        assert!(!watch(&[
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"
        ]));
        assert!(!watch(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]));
    }

    #[test]
    fn bare_lf_heads_are_read_as_hyper_reads_them() {
        let cases: [(&[u8], bool); 5] = [
            (b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", true),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", true),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nabcd", false),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", false),
        ];
        for (crlf, ambiguous) in cases {
            assert_eq!(
                both_ways(crlf),
                ambiguous,
                "{}",
                String::from_utf8_lossy(crlf)
            );
            assert_eq!(
                both_ways(&bare_lf(crlf)),
                ambiguous,
                "bare LF: {}",
                String::from_utf8_lossy(crlf)
            );
        }
        // Mixed line ends in one head.
        assert!(both_ways(
            b"POST / HTTP/1.1\nHost: a\r\nContent-Length: 1\nContent-Length: 1\r\n\r\nx"
        ));
        assert!(both_ways(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\n\nx"
        ));
    }

    #[test]
    fn pipelined_bare_lf_requests_are_each_checked() {
        // A clean bare-LF request with a body, then an ambiguous one: the
        // body is skipped by its length, so the second head is read.
        let body = b"a\nContent-Length: 1\nTransfer-Encoding: chunked\n\n";
        let first = format!(
            "POST / HTTP/1.1\nHost: a\nContent-Length: {}\n\n",
            body.len()
        );
        let mut stream = first.into_bytes();
        stream.extend_from_slice(body);
        assert!(
            !both_ways(&stream),
            "a body that looks like a head is not one"
        );
        stream.extend_from_slice(
            b"\nPOST / HTTP/1.1\nHost: a\nContent-Length: 1\nContent-Length: 1\n\nx",
        );
        assert!(both_ways(&stream));
    }

    #[test]
    fn bodies_are_skipped_so_later_heads_are_checked() {
        // A body that looks like headers is not a head.
        let body = b"x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        assert!(!watch(&[head.as_bytes(), body, b"GET / HTTP/1.1\r\n\r\n"]));
        // Chunked bodies, split at every byte, then an ambiguous second request.
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na";
        assert!(both_ways(stream));
        let clean = &stream[..stream.len() - 58];
        assert!(!both_ways(clean));
        // Chunk data holding CRLFs and what looks like a head.
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\nGET / HTTP/1.1\r\nA: 1\r\nB: 22\r\n\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert!(!both_ways(stream));
    }

    #[test]
    fn chunked_bodies_hyper_refuses_are_not_followed() {
        let head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let next = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for body in [
            &b"4\nabcd\r\n0\r\n\r\n"[..],
            b"4\r\nabcd\n0\r\n\r\n",
            b"4\r\nabcdef\r\n0\r\n\r\n",
            b"1ffffffffffffffff\r\na\r\n0\r\n\r\n",
            b"4;a=b\rc\r\nabcd\r\n0\r\n\r\n",
            b"4;a=b\nc\r\nabcd\r\n0\r\n\r\n",
            b"x\r\n",
        ] {
            let mut stream = head.clone();
            stream.extend_from_slice(body);
            stream.extend_from_slice(next);
            assert!(both_ways(&stream), "{}", String::from_utf8_lossy(body));
        }
        let mut clean = head.clone();
        clean.extend_from_slice(b"4 ;a=b\r\nabcd\r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n");
        clean.extend_from_slice(next);
        assert!(!both_ways(&clean));
    }

    #[test]
    fn heads_hyper_refuses_or_cannot_hold_stop_the_watch() {
        let mut w = FramingWatch::new(1024);
        w.feed(b"GET / HTTP/1.1\r\nX: ");
        w.feed(&[b'a'; 2048]);
        assert!(w.ambiguous(), "a head past the limit");
        assert!(watch(&[b"GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n"]));
        assert!(watch(&[
            b"POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\nabcd"
        ]));
        let many: String = (0..101).map(|i| format!("h{i}: 1\r\n")).collect();
        assert!(watch(&[format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()]));
    }

    #[test]
    fn heads_that_arrive_whole_are_not_copied() {
        let mut w = FramingWatch::new(64 * 1024);
        w.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab");
        w.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(!w.ambiguous());
        assert_eq!(w.head.capacity(), 0, "a whole head was buffered");
        // Bytes without a line end after a whole head (a client's early
        // upgraded data) are not judged yet, as when fed apart.
        let mut early = FramingWatch::new(64 * 1024);
        early.feed(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n\x81\x85mask!");
        assert!(!early.ambiguous());
        // A head split across reads still is.
        w.feed(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n");
        w.feed(b"Content-Length: 1\r\n\r\nx");
        assert!(w.ambiguous());
    }

    #[test]
    fn http2_prior_knowledge_turns_the_watch_off() {
        assert!(!watch(&[
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ]));
        let bytes: Vec<&[u8]> = H2_PREFACE.chunks(1).collect();
        assert!(!watch(&bytes));
        // Only the first head may be the preface.
        assert!(watch(&[
            b"GET / HTTP/1.1\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        ]));
    }
}
