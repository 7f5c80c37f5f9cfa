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

/// Where the watch is in the byte stream.
#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping a body of known length.
    Fixed(u64),
    /// Reading a chunk-size line.
    ChunkSize(Vec<u8>),
    /// Skipping chunk data and its CRLF.
    ChunkData(u64),
    /// Reading trailer lines until an empty one.
    Trailers(Vec<u8>),
    /// Not HTTP/1.1 framing any more (HTTP/2, an oversized head): stop.
    Off,
}

/// Follows request framing over a connection's incoming bytes.
#[derive(Debug)]
pub struct FramingWatch {
    state: State,
    max_head: usize,
    ambiguous: bool,
}

impl FramingWatch {
    /// A watch for a new connection; heads longer than `max_head` end it.
    pub fn new(max_head: usize) -> Self {
        FramingWatch {
            state: State::Head(Vec::new()),
            max_head,
            ambiguous: false,
        }
    }

    /// Whether some request so far had ambiguous framing.
    pub fn ambiguous(&self) -> bool {
        self.ambiguous
    }

    /// Feeds bytes read from the client.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.state {
                State::Off => return,
                State::Head(buf) => {
                    // Skip the empty lines allowed before a request line.
                    if buf.is_empty() {
                        let start = data.iter().position(|b| *b != b'\r' && *b != b'\n');
                        match start {
                            Some(i) => data = &data[i..],
                            None => return,
                        }
                    }
                    let before = buf.len();
                    buf.extend_from_slice(data);
                    let search_from = before.saturating_sub(3);
                    match find(&buf[search_from..], b"\r\n\r\n") {
                        Some(i) => {
                            let end = search_from + i + 4;
                            let consumed = end - before;
                            let head = std::mem::take(buf);
                            data = &data[consumed..];
                            self.state = self.after_head(&head[..end]);
                        }
                        None => {
                            if buf.len() > self.max_head {
                                self.state = State::Off;
                            }
                            return;
                        }
                    }
                }
                State::Fixed(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::ChunkSize(line) => match data.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        data = &data[i + 1..];
                        let size = parse_chunk_size(line);
                        self.state = match size {
                            Some(0) => State::Trailers(Vec::new()),
                            Some(n) => State::ChunkData(n.saturating_add(2)),
                            None => State::Off,
                        };
                    }
                    None => {
                        line.extend_from_slice(data);
                        if line.len() > 1024 {
                            self.state = State::Off;
                        }
                        return;
                    }
                },
                State::ChunkData(n) => {
                    let take = (*n).min(data.len() as u64);
                    *n -= take;
                    data = &data[take as usize..];
                    if *n == 0 {
                        self.state = State::ChunkSize(Vec::new());
                    }
                }
                State::Trailers(line) => match data.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        data = &data[i + 1..];
                        let empty = line.iter().all(|b| *b == b'\r');
                        line.clear();
                        if empty {
                            self.state = State::Head(Vec::new());
                        }
                    }
                    None => {
                        line.extend_from_slice(data);
                        if line.len() > self.max_head {
                            self.state = State::Off;
                        }
                        return;
                    }
                },
            }
        }
    }

    /// Checks a complete head and picks how its body is framed.
    fn after_head(&mut self, head: &[u8]) -> State {
        if head.starts_with(b"PRI * HTTP/2.0") {
            return State::Off;
        }
        let mut lengths = Vec::new();
        let mut te = false;
        for line in head.split(|b| *b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let name = &line[..colon];
            let value = trim(&line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                for part in value.split(|b| *b == b',') {
                    lengths.push(std::str::from_utf8(trim(part)).ok().and_then(|s| s.parse::<u64>().ok()));
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te = true;
            }
        }
        if lengths.len() > 1 || (te && !lengths.is_empty()) {
            self.ambiguous = true;
        }
        if te {
            State::ChunkSize(Vec::new())
        } else {
            match lengths.first() {
                Some(Some(0)) | None => State::Head(Vec::new()),
                Some(Some(n)) => State::Fixed(*n),
                Some(None) => State::Off,
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &s[start..end]
}

fn parse_chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|b| *b == b';').next()?;
    let hex = trim(hex);
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
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

    #[test]
    fn ambiguous_heads_are_flagged() {
        assert!(watch(&[b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"]));
        assert!(watch(&[b"POST / HTTP/1.1\r\ncontent-length: 4\r\nCONTENT-LENGTH: 4\r\n\r\nabcd"]));
        assert!(watch(&[b"POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\nabcd"]));
        assert!(!watch(&[b"POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd"]));
        assert!(!watch(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]));
    }

    #[test]
    fn bodies_are_skipped_so_later_heads_are_checked() {
        // A body that looks like headers is not a head.
        let body = b"x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let head = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len());
        assert!(!watch(&[head.as_bytes(), body, b"GET / HTTP/1.1\r\n\r\n"]));
        // Chunked bodies, split at every byte, then an ambiguous second request.
        let stream = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na";
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert!(watch(&bytes));
        let clean = &stream[..stream.len() - 58];
        let bytes: Vec<&[u8]> = clean.chunks(1).collect();
        assert!(!watch(&bytes));
    }

    #[test]
    fn http2_prior_knowledge_turns_the_watch_off() {
        assert!(!watch(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n"]));
    }
}
