//! What of a reassembled TCP direction AV modules scan: HTTP/1.x message
//! bodies when the direction speaks HTTP, otherwise the whole stream.
//!
//! [`Splitter`] is fed the direction's in-order bytes and says which of
//! them are payload ([`Piece::Input`]/[`Piece::Held`]) and where a payload
//! ends ([`Piece::End`]). For HTTP it skips start lines and headers, follows
//! `Content-Length` and `Transfer-Encoding: chunked` (decoding the chunk
//! framing, so a file's hash signature matches the file sent), treats a
//! response without either as running until the connection closes, and
//! starts a new payload for each message on a keep-alive connection. A
//! direction whose first line is not HTTP is one payload from its first
//! byte; so is one whose headers exceed [`MAX_HEAD`] (the held bytes are
//! handed over as payload).
//!
//! It is the host's one HTTP/1.x framing: it also hands over each message's
//! start line and headers ([`Piece::Head`]), which the application layer
//! ([`crate::app::http`]) parses into transactions.

use std::ops::Range;

/// Longest start line plus headers kept while looking for their end.
pub const MAX_HEAD: usize = 64 * 1024;

/// One step of the split, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Payload bytes at this range of the input just pushed.
    Input(Range<usize>),
    /// Payload bytes the splitter held back (non-HTTP start).
    Held(Vec<u8>),
    /// The current payload is complete.
    End,
    /// A message's start line and headers, blank line included; its body
    /// (if any) follows as payload.
    Head(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Collecting a start line and headers in `head`.
    Head,
    /// In a body with this many bytes left.
    Body(u64),
    /// Reading a chunk-size line (in `head`).
    ChunkSize,
    /// In a chunk with this many bytes left, then its CRLF.
    Chunk(u64),
    /// After a chunk's data: skipping its CRLF (in `head`).
    ChunkEnd,
    /// After the last chunk: skipping trailers up to the empty line.
    Trailers,
    /// Everything is payload (non-HTTP, or a body until close).
    Raw,
}

/// Splits one direction of one TCP stream into payloads.
#[derive(Debug, Clone)]
pub struct Splitter {
    state: State,
    head: Vec<u8>,
    /// Whether anything was seen yet (only the first message decides
    /// between HTTP and raw).
    started: bool,
}

impl Default for Splitter {
    fn default() -> Self {
        Splitter {
            state: State::Head,
            head: Vec::new(),
            started: false,
        }
    }
}

/// What the headers of one message say about its body.
enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

impl Splitter {
    /// Splits `data`, the next in-order bytes of the direction.
    pub fn push(&mut self, data: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < data.len() {
            at = match self.state.clone() {
                State::Raw => {
                    out.push(Piece::Input(at..data.len()));
                    data.len()
                }
                State::Head => self.head_step(data, at, &mut out),
                State::Body(left) => {
                    let take = left.min((data.len() - at) as u64) as usize;
                    out.push(Piece::Input(at..at + take));
                    let left = left - take as u64;
                    if left == 0 {
                        out.push(Piece::End);
                        self.state = State::Head;
                    } else {
                        self.state = State::Body(left);
                    }
                    at + take
                }
                State::Chunk(left) => {
                    let take = left.min((data.len() - at) as u64) as usize;
                    out.push(Piece::Input(at..at + take));
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::ChunkEnd
                    } else {
                        State::Chunk(left)
                    };
                    at + take
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    self.line_step(data, at, &mut out)
                }
            };
        }
        out
    }

    /// Collects the start line and headers; decides HTTP or raw on the
    /// first message.
    fn head_step(&mut self, data: &[u8], at: usize, out: &mut Vec<Piece>) -> usize {
        let before = self.head.len();
        let room = MAX_HEAD.saturating_sub(before).max(1);
        let end = (at + room).min(data.len());
        self.head.extend_from_slice(&data[at..end]);
        if !self.started && !self.looks_like_http() {
            self.give_up_to_raw(out);
            return end;
        }
        let Some(stop) = find_head_end(&self.head) else {
            if self.head.len() >= MAX_HEAD {
                self.give_up_to_raw(out);
            }
            return end;
        };
        self.started = true;
        let consumed = stop - before;
        let kind = body_kind(&self.head[..stop]);
        out.push(Piece::Head(self.head[..stop].to_vec()));
        self.head.clear();
        self.state = match kind {
            BodyKind::None | BodyKind::Length(0) => State::Head,
            BodyKind::Length(n) => State::Body(n),
            BodyKind::Chunked => State::ChunkSize,
            BodyKind::UntilClose => State::Raw,
        };
        at + consumed
    }

    /// Before the first line is complete: could this still be HTTP/1.x?
    fn looks_like_http(&self) -> bool {
        let line_end = self.head.iter().position(|&b| b == b'\n');
        let line = &self.head[..line_end.unwrap_or(self.head.len())];
        if line.starts_with(b"HTTP/1.") || b"HTTP/1.".starts_with(line) {
            return true;
        }
        match line_end {
            // A request line ends in ` HTTP/1.x`.
            // The same method test as below, so where the input is split
            // never changes the decision.
            Some(_) => {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                line.len() > 9
                    && line.len() < 4096
                    && line[line.len() - 9..].starts_with(b" HTTP/1.")
                    && line
                        .iter()
                        .take_while(|&&b| b != b' ')
                        .all(u8::is_ascii_uppercase)
            }
            None => {
                self.head.len() < 4096
                    && self
                        .head
                        .iter()
                        .take_while(|&&b| b != b' ')
                        .all(u8::is_ascii_uppercase)
            }
        }
    }

    fn give_up_to_raw(&mut self, out: &mut Vec<Piece>) {
        out.push(Piece::Held(std::mem::take(&mut self.head)));
        self.started = true;
        self.state = State::Raw;
    }

    /// Chunk-size lines, the CRLF after chunk data, and trailers.
    fn line_step(&mut self, data: &[u8], at: usize, out: &mut Vec<Piece>) -> usize {
        let Some(nl) = data[at..].iter().position(|&b| b == b'\n') else {
            self.head.extend_from_slice(&data[at..]);
            if self.head.len() > MAX_HEAD {
                // Not chunked framing after all: give up on this message.
                out.push(Piece::End);
                self.head.clear();
                self.state = State::Raw;
            }
            return data.len();
        };
        self.head.extend_from_slice(&data[at..at + nl]);
        let line = std::mem::take(&mut self.head);
        let line = line.strip_suffix(b"\r").unwrap_or(&line);
        self.state = match self.state {
            State::ChunkSize => {
                let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
                let size = std::str::from_utf8(size)
                    .ok()
                    .and_then(|s| u64::from_str_radix(s.trim(), 16).ok());
                match size {
                    Some(0) => State::Trailers,
                    Some(n) => State::Chunk(n),
                    None => {
                        out.push(Piece::End);
                        State::Raw
                    }
                }
            }
            State::ChunkEnd => State::ChunkSize,
            _ if line.is_empty() => {
                out.push(Piece::End);
                State::Head
            }
            _ => State::Trailers,
        };
        at + nl + 1
    }
}

/// Index just past the blank line ending the headers.
fn find_head_end(head: &[u8]) -> Option<usize> {
    let crlf = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4);
    let lf = head.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn body_kind(head: &[u8]) -> BodyKind {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let start = lines.next().unwrap_or("");
    let response = start.starts_with("HTTP/");
    if response {
        let status: u32 = start
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if (100..200).contains(&status) || status == 204 || status == 304 {
            return BodyKind::None;
        }
    }
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            return BodyKind::Chunked;
        }
        if name.trim().eq_ignore_ascii_case("content-length") {
            length = value.parse::<u64>().ok();
        }
    }
    match length {
        Some(n) => BodyKind::Length(n),
        None if response => BodyKind::UntilClose,
        None => BodyKind::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Payloads in order, each complete one ending with `|`.
    fn split(parts: &[&[u8]]) -> String {
        let mut s = Splitter::default();
        let mut out = String::new();
        for p in parts {
            for piece in s.push(p) {
                match piece {
                    Piece::Input(r) => out.push_str(&String::from_utf8_lossy(&p[r])),
                    Piece::Held(b) => out.push_str(&String::from_utf8_lossy(&b)),
                    Piece::End => out.push('|'),
                    Piece::Head(_) => {}
                }
            }
        }
        out
    }

    #[test]
    fn content_length_bodies_on_keep_alive_are_separate_payloads() {
        let stream = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nabc";
        assert_eq!(split(&[stream]), "hello|abc|");
        // The same bytes one at a time.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(split(&bytes), "hello|abc|");
    }

    #[test]
    fn chunked_bodies_are_decoded() {
        let stream = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: 1\r\n\r\n";
        assert_eq!(split(&[stream]), "Wikipedia |");
        let bytes: Vec<&[u8]> = stream.chunks(3).collect();
        assert_eq!(split(&bytes), "Wikipedia |");
    }

    #[test]
    fn a_response_without_length_runs_until_close() {
        assert_eq!(
            split(&[b"HTTP/1.0 200 OK\r\n\r\nall", b" the rest"]),
            "all the rest"
        );
    }

    #[test]
    fn requests_without_a_body_yield_nothing_and_posts_their_body() {
        assert_eq!(
            split(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /up HTTP/1.1\r\nContent-Length: 4\r\n\r\ndata"]),
            "data|"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_invent_payload() {
        let mut x: u32 = 0x2545_f491;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let alphabet = b"HTTP/1.1 200\r\n:Content-Length: 3;chunked0aF\x00\xff";
        for _ in 0..200 {
            let len = (next() % 400) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() as usize) % alphabet.len()])
                .collect();
            let mut s = Splitter::default();
            let mut payload = 0usize;
            let mut at = 0;
            while at < data.len() {
                let n = 1 + (next() as usize) % 37;
                let part = &data[at..(at + n).min(data.len())];
                for p in s.push(part) {
                    match p {
                        Piece::Input(r) => {
                            assert!(r.end <= part.len());
                            payload += r.len();
                        }
                        Piece::Held(h) => payload += h.len(),
                        Piece::End | Piece::Head(_) => {}
                    }
                }
                at += n;
            }
            assert!(payload <= data.len());
        }
    }

    #[test]
    fn the_http_decision_does_not_depend_on_where_the_input_is_split() {
        // Found by fuzz target app_parsers: a complete line used to pass on
        // its ` HTTP/1.x` suffix alone while a partial one failed on `GE:`.
        let stream: &[u8] = b"GE: /a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
        let whole = split(&[stream]);
        let (a, b) = stream.split_at(5);
        assert_eq!(split(&[a, b]), whole);
        assert_eq!(whole, String::from_utf8_lossy(stream));
    }

    #[test]
    fn anything_else_is_one_raw_payload() {
        assert_eq!(
            split(&[b"220 smtp.example ESMTP\r\n", b"more"]),
            "220 smtp.example ESMTP\r\nmore"
        );
        assert_eq!(
            split(&[b"\x00\x01binary", b"\x02"]),
            "\u{0}\u{1}binary\u{2}"
        );
    }
}
