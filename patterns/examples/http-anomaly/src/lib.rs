//! HTTP/1.x request anomalies on TCP streams, on any port. Requests are
//! read from the reassembled client-to-server stream (stream chunks, or the
//! packets themselves when the engine does not reassemble them), across
//! segment boundaries, one request after another on a keep-alive
//! connection. The module reports:
//!
//! - sid 9200001 — an HTTP/1.1 request without a `Host` header (RFC 9112
//!   §3.2: a server must reject it; scanners and hand-made exploits omit it);
//! - sid 9200002 — a request line or header line longer than [`MAX_LINE`]
//!   bytes (overflow attempts), or a header section over [`MAX_HEADERS`]
//!   bytes without an end;
//! - sid 9200003 — more than one `Content-Length` header (request smuggling,
//!   RFC 9112 §6.3);
//! - sid 9200004 — a request method that is not an RFC 9110 token.
//!
//! A stream whose first line is not an HTTP/1.x request line is left alone;
//! so is everything after a `Transfer-Encoding` request body (the module does
//! not decode chunked bodies). Parse state per flow lives in the engine's
//! flow table ([`State`]); unfinished header bytes live in the instance.

use std::collections::HashMap;

use sandgate_pattern_sdk::{export_inspector, Hits, Inspector, Packet, Rule};

pub const SID_NO_HOST: u32 = 9_200_001;
pub const SID_LONG_LINE: u32 = 9_200_002;
pub const SID_DUP_CONTENT_LENGTH: u32 = 9_200_003;
pub const SID_BAD_METHOD: u32 = 9_200_004;

/// Longest request or header line that is not reported.
pub const MAX_LINE: usize = 2048;
/// Header bytes buffered per flow before giving up on the request.
pub const MAX_HEADERS: usize = 16 * 1024;
/// Flows with unfinished headers kept at once; beyond it one is dropped.
const MAX_PENDING: usize = 1024;

/// Where a flow's client stream is; stored as flow state (9 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// At the start of a request.
    RequestStart,
    /// Inside a request's header section.
    Headers,
    /// Inside a request body; this many bytes remain.
    Body(u64),
    /// Not HTTP, or a body the module cannot delimit: ignore the rest.
    Done,
}

impl State {
    fn encode(self) -> [u8; 9] {
        let mut b = [0u8; 9];
        match self {
            State::RequestStart => {}
            State::Headers => b[0] = 1,
            State::Body(n) => {
                b[0] = 2;
                b[1..].copy_from_slice(&n.to_le_bytes());
            }
            State::Done => b[0] = 3,
        }
        b
    }

    fn decode(b: &[u8]) -> State {
        match b.first() {
            Some(1) => State::Headers,
            Some(2) => {
                let mut n = [0u8; 8];
                if let Some(src) = b.get(1..9) {
                    n.copy_from_slice(src);
                }
                State::Body(u64::from_le_bytes(n))
            }
            Some(3) => State::Done,
            _ => State::RequestStart,
        }
    }
}

/// What a complete header section says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Sids to report.
    pub sids: Vec<u32>,
    /// The body that follows: `Some(n)` bytes, or `None` when it cannot be
    /// delimited (chunked) or the stream is not HTTP.
    pub body: Option<u64>,
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Is `line` a request line (`METHOD SP TARGET SP HTTP/1.x`)? Returns the
/// method and the minor version.
fn request_line(line: &[u8]) -> Option<(&[u8], u8)> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let rest = line.get(sp + 1..)?;
    let version = rest.get(rest.len().checked_sub(9)?..)?;
    if version.len() != 9 || version[0] != b' ' || &version[1..8] != b"HTTP/1." {
        return None;
    }
    Some((&line[..sp], version[8].wrapping_sub(b'0')))
}

/// Judge one header section (`head` ends with the blank line).
pub fn judge(head: &[u8]) -> Findings {
    let mut f = Findings::default();
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let Some((method, minor)) = lines.next().and_then(request_line) else {
        return f;
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        f.sids.push(SID_BAD_METHOD);
    }
    let mut long = head.split(|&b| b == b'\n').any(|l| l.len() > MAX_LINE + 1);
    let (mut host, mut lengths, mut chunked) = (false, Vec::new(), false);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..]).unwrap_or("").trim();
        if name.eq_ignore_ascii_case(b"host") {
            host = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            lengths.push(value.parse::<u64>().ok());
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
        long |= line.len() > MAX_LINE;
    }
    if minor == 1 && !host {
        f.sids.push(SID_NO_HOST);
    }
    if long {
        f.sids.push(SID_LONG_LINE);
    }
    if lengths.len() > 1 {
        f.sids.push(SID_DUP_CONTENT_LENGTH);
    }
    f.sids.sort_unstable();
    f.body = match (chunked, lengths.first()) {
        (true, _) | (false, Some(None)) => None,
        (false, Some(Some(n))) => Some(*n),
        (false, None) => Some(0),
    };
    f
}

#[derive(Default)]
pub struct HttpAnomaly {
    /// Unfinished header sections, per flow.
    pending: HashMap<u64, Vec<u8>>,
}

impl HttpAnomaly {
    /// Feed client stream bytes of `flow`, reporting into `hits`.
    fn feed(&mut self, flow: u64, mut data: &[u8], state: &mut State, hits: &mut Hits<'_>) {
        while !data.is_empty() {
            match *state {
                State::Done => return,
                State::Body(n) => {
                    let skip = usize::try_from(n).unwrap_or(usize::MAX).min(data.len());
                    data = &data[skip..];
                    let left = n - skip as u64;
                    *state = if left == 0 {
                        State::RequestStart
                    } else {
                        State::Body(left)
                    };
                }
                State::RequestStart if data[0] == b'\r' || data[0] == b'\n' => {
                    // Empty lines before a request line are ignored
                    // (RFC 9112 §2.2); clients send a stray CRLF after a body.
                    data = &data[1..];
                }
                State::RequestStart | State::Headers => {
                    let buf = self.pending.entry(flow).or_default();
                    let before = buf.len();
                    // Look for the end from a little before the new bytes,
                    // so a CRLFCRLF split across segments is found.
                    buf.extend_from_slice(data);
                    let from = before.saturating_sub(3);
                    let end = buf[from..]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map(|p| from + p + 4);
                    let Some(end) = end else {
                        if *state == State::RequestStart && request_prefix_fails(buf) {
                            *state = State::Done;
                        } else if buf.len() > MAX_HEADERS {
                            hits.alert(SID_LONG_LINE);
                            *state = State::Done;
                        } else {
                            *state = State::Headers;
                            if self.pending.len() > MAX_PENDING {
                                self.evict(flow);
                            }
                            return;
                        }
                        self.pending.remove(&flow);
                        return;
                    };
                    let consumed = end - before;
                    let findings = judge(&buf[..end]);
                    self.pending.remove(&flow);
                    for sid in findings.sids {
                        hits.alert(sid);
                    }
                    *state = match findings.body {
                        Some(0) => State::RequestStart,
                        Some(n) => State::Body(n),
                        None => State::Done,
                    };
                    data = &data[consumed.min(data.len())..];
                }
            }
        }
    }

    /// Drop one pending flow other than `keep`.
    fn evict(&mut self, keep: u64) {
        if let Some(&victim) = self.pending.keys().find(|&&f| f != keep) {
            self.pending.remove(&victim);
        }
    }
}

/// True once the first bytes cannot start a request line (a method of
/// tchars then a space): the stream is not HTTP.
fn request_prefix_fails(buf: &[u8]) -> bool {
    let first = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    match first.iter().position(|&b| b == b' ') {
        Some(_) => false,
        None => first.len() > 32 || first.iter().any(|&b| b < 0x20 && b != b'\r'),
    }
}

impl Inspector for HttpAnomaly {
    fn rules() -> Vec<Rule> {
        let rule = |sid, msg: &str| {
            Rule::new(sid, msg)
                .classtype("protocol-command-decode")
                .metadata("module http-anomaly")
        };
        vec![
            rule(SID_NO_HOST, "SANDGATE HTTP/1.1 request without Host header"),
            rule(SID_LONG_LINE, "SANDGATE HTTP request header line too long")
                .classtype("attempted-admin"),
            rule(
                SID_DUP_CONTENT_LENGTH,
                "SANDGATE HTTP request with duplicate Content-Length (smuggling)",
            )
            .classtype("attempted-admin")
            .reference("url,www.rfc-editor.org/rfc/rfc9112#section-6.3"),
            rule(
                SID_BAD_METHOD,
                "SANDGATE HTTP request method is not a token",
            ),
        ]
    }

    fn inspect(&mut self, pkt: &Packet<'_>, hits: &mut Hits<'_>) {
        let data = pkt.new_data();
        let stream_data = pkt.is_stream_chunk() || !pkt.in_stream_later();
        if !pkt.is_tcp() || !pkt.to_server() || !stream_data || data.is_empty() {
            return;
        }
        let flow = pkt.flow_id();
        let mut state = pkt
            .flow_state()
            .map_or(State::RequestStart, |b| State::decode(&b));
        // Unfinished headers lost with an instance restart: resync never.
        if state == State::Headers && !self.pending.contains_key(&flow) {
            state = State::Done;
        }
        let before = state;
        self.feed(flow, data, &mut state, hits);
        if state != before {
            pkt.set_flow_state(&state.encode());
        }
    }

    fn fuel() -> sandgate_pattern_sdk::Fuel {
        sandgate_pattern_sdk::Fuel {
            per_packet: 40_000,
            per_byte: 300,
        }
    }
}

export_inspector!(HttpAnomaly);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_anomaly_is_found_and_a_clean_request_is_not() {
        let clean = judge(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            clean,
            Findings {
                sids: vec![],
                body: Some(5)
            }
        );
        assert_eq!(judge(b"GET / HTTP/1.1\r\n\r\n").sids, [SID_NO_HOST]);
        assert!(
            judge(b"GET / HTTP/1.0\r\n\r\n").sids.is_empty(),
            "1.0 needs no Host"
        );
        let long = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "A".repeat(3000)
        );
        assert_eq!(judge(long.as_bytes()).sids, [SID_LONG_LINE]);
        let dup = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(judge(dup).sids, [SID_DUP_CONTENT_LENGTH]);
        assert_eq!(
            judge(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n").sids,
            [SID_BAD_METHOD]
        );
        let chunked = judge(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(chunked.body, None);
        assert_eq!(judge(b"SSH-2.0-OpenSSH\r\n\r\n"), Findings::default());
    }

    #[test]
    fn flow_state_round_trips_and_garbage_decodes_to_a_state() {
        for s in [
            State::RequestStart,
            State::Headers,
            State::Body(77),
            State::Done,
        ] {
            assert_eq!(State::decode(&s.encode()), s);
        }
        assert_eq!(State::decode(&[2, 1]), State::Body(0));
        assert_eq!(State::decode(&[]), State::RequestStart);
        for n in 0..40 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 91 + 7) as u8).collect();
            let _ = judge(&junk);
            let _ = request_prefix_fails(&junk);
        }
    }
}
