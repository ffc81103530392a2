//! HTTP/1.x transactions of one TCP flow.
//!
//! Framing (where heads and bodies start and end, Content-Length, chunked,
//! until close, keep-alive pipelining) is [`Splitter`]'s, the same the AV
//! scan uses; this module parses each head with `httparse` into the 1.2.0
//! buffers, keeps up to [`BODY_LIMIT`] bytes of each body (Suricata's
//! default `request-body-limit`/`response-body-limit` order of magnitude),
//! and pairs each response with the oldest unanswered request of the flow,
//! so a response's transaction also carries the request's URI, host and
//! method (for EVE, and for rules mixing request and response buffers).

use std::collections::VecDeque;

use serde_json::{Map, Value};

use super::{ids, js, put, text, Fields, Proto, Transaction};
use crate::flow::Direction;
use crate::payload::{Piece, Splitter};

/// Body bytes kept per message for `http.request_body`,
/// `http.response_body` and `file.data`; the rest is not inspected.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Requests kept waiting for their response, and their buffers' bytes
/// together; past either, the oldest are forgotten (their responses then
/// pair with nothing).
const MAX_PENDING: usize = 32;
const MAX_PENDING_BYTES: usize = 256 * 1024;

/// Headers one message may have for `httparse`; a message with more is
/// not parsed (its bytes still flow through the framing).
const MAX_HEADERS: usize = 128;

/// What EVE's `http` object shows of a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpFields {
    pub hostname: Option<String>,
    pub url: Option<String>,
    pub http_user_agent: Option<String>,
    pub http_content_type: Option<String>,
    pub http_refer: Option<String>,
    pub http_method: Option<String>,
    pub protocol: Option<String>,
    pub status: Option<u16>,
    pub redirect: Option<String>,
    /// Body bytes seen so far of this side's message.
    pub length: u64,
}

impl HttpFields {
    pub(crate) fn to_json(&self) -> Value {
        let mut o = Map::new();
        let s = |v: &Option<String>| v.as_ref().map(|v| js(v.as_str()));
        put(&mut o, "hostname", s(&self.hostname));
        put(&mut o, "url", s(&self.url));
        put(&mut o, "http_user_agent", s(&self.http_user_agent));
        put(&mut o, "http_content_type", s(&self.http_content_type));
        put(&mut o, "http_refer", s(&self.http_refer));
        put(&mut o, "http_method", s(&self.http_method));
        put(&mut o, "protocol", s(&self.protocol));
        put(&mut o, "status", self.status.map(Value::from));
        put(&mut o, "redirect", s(&self.redirect));
        o.insert("length".into(), Value::from(self.length));
        Value::Object(o)
    }

    pub(crate) fn summary(&self) -> String {
        let mut s = format!(
            "http host={} url={}",
            self.hostname.as_deref().unwrap_or("-"),
            self.url.as_deref().unwrap_or("-")
        );
        if let Some(st) = self.status {
            s.push_str(&format!(" status={st}"));
        }
        s
    }
}

/// A parsed head: its buffers and EVE fields.
#[derive(Debug, Clone)]
struct Head {
    buffers: Vec<(u32, Vec<u8>)>,
    fields: HttpFields,
}

/// The message being received on one side.
#[derive(Debug)]
struct Message {
    tx_id: u64,
    head: Vec<u8>,
    parsed: Head,
    body: Vec<u8>,
    /// Body bytes seen (past the cap too).
    seen: u64,
    /// The body transaction went out (at the cap); nothing more is sent.
    sent: bool,
}

#[derive(Debug, Default)]
struct Half {
    splitter: Splitter,
    msg: Option<Message>,
    /// Not HTTP after all: ignored from here on.
    dead: bool,
}

/// HTTP state of one flow: both directions, and the requests waiting for
/// their responses.
#[derive(Debug, Default)]
pub struct HttpFlow {
    halves: [Half; 2],
    /// (tx id, request-only buffers and fields) of unanswered requests.
    pending: VecDeque<(u64, Head)>,
    pending_bytes: usize,
    next_tx: u64,
}

/// Request methods recognised at the start of a flow (RFC 9110 and WebDAV).
const METHODS: [&[u8]; 16] = [
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"CONNECT",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
];

/// Whether the first bytes of a direction start an HTTP/1.x message (a
/// known method and a space, or `HTTP/`): `None` while too few to tell.
pub fn looks_like_http(first: &[u8]) -> Option<bool> {
    let mut undecided = false;
    for word in METHODS
        .iter()
        .map(|m| [*m, b" "].concat())
        .chain([b"HTTP/".to_vec()])
    {
        let n = first.len().min(word.len());
        if first[..n] == word[..n] {
            if n == word.len() {
                return Some(true);
            }
            undecided = true;
        }
    }
    if undecided {
        None
    } else {
        Some(false)
    }
}

impl HttpFlow {
    /// Next in-order bytes of side `s` (0 to server, 1 to client).
    pub fn push(&mut self, s: usize, data: &[u8]) -> Vec<Transaction> {
        let mut out = Vec::new();
        let Some(half) = self.halves.get_mut(s) else {
            return out;
        };
        if half.dead {
            return out;
        }
        let pieces = half.splitter.push(data);
        for piece in pieces {
            match piece {
                Piece::Head(head) => {
                    self.end_message(s, &mut out);
                    self.start_message(s, head, &mut out);
                }
                Piece::Input(r) => {
                    let bytes = data.get(r).unwrap_or(&[]);
                    self.body(s, bytes, &mut out);
                }
                Piece::Held(_) => {
                    self.halves[s].dead = true;
                    self.halves[s].msg = None;
                    return out;
                }
                Piece::End => self.end_message(s, &mut out),
            }
        }
        out
    }

    /// Side `s` closed: a body running until close is complete.
    pub fn close(&mut self, s: usize) -> Vec<Transaction> {
        let mut out = Vec::new();
        if s < 2 {
            self.end_message(s, &mut out);
        }
        out
    }

    fn start_message(&mut self, s: usize, head: Vec<u8>, out: &mut Vec<Transaction>) {
        let parsed = if s == 0 {
            parse_request(&head)
        } else {
            parse_response(&head)
        };
        let Some(mut parsed) = parsed else {
            return;
        };
        let tx_id = if s == 0 {
            let id = self.next_tx;
            self.next_tx += 1;
            let kept = Head {
                buffers: parsed
                    .buffers
                    .iter()
                    .filter(|(i, _)| REQUEST_ONLY.contains(i))
                    .cloned()
                    .collect(),
                fields: parsed.fields.clone(),
            };
            self.pending_bytes += head_bytes(&kept);
            self.pending.push_back((id, kept));
            while self.pending.len() > MAX_PENDING || self.pending_bytes > MAX_PENDING_BYTES {
                let Some((_, old)) = self.pending.pop_front() else {
                    break;
                };
                self.pending_bytes = self.pending_bytes.saturating_sub(head_bytes(&old));
            }
            id
        } else {
            match self.pending.pop_front() {
                Some((id, req)) => {
                    self.pending_bytes = self.pending_bytes.saturating_sub(head_bytes(&req));
                    merge_request(&mut parsed, &req);
                    id
                }
                None => {
                    let id = self.next_tx;
                    self.next_tx += 1;
                    id
                }
            }
        };
        out.push(transaction(s, tx_id, &head, &parsed, None));
        self.halves[s].msg = Some(Message {
            tx_id,
            head,
            parsed,
            body: Vec::new(),
            seen: 0,
            sent: false,
        });
    }

    fn body(&mut self, s: usize, bytes: &[u8], out: &mut Vec<Transaction>) {
        let Some(msg) = self.halves[s].msg.as_mut() else {
            return;
        };
        msg.seen = msg.seen.saturating_add(bytes.len() as u64);
        if msg.sent {
            return;
        }
        let room = BODY_LIMIT - msg.body.len();
        msg.body
            .extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or(&[]));
        if msg.body.len() >= BODY_LIMIT {
            msg.sent = true;
            out.push(body_transaction(s, msg));
        }
    }

    fn end_message(&mut self, s: usize, out: &mut Vec<Transaction>) {
        if let Some(msg) = self.halves[s].msg.take() {
            if !msg.sent && !msg.body.is_empty() {
                out.push(body_transaction(s, &msg));
            }
        }
    }
}

fn head_bytes(h: &Head) -> usize {
    h.buffers.iter().map(|(_, b)| b.len()).sum()
}

fn body_transaction(s: usize, msg: &Message) -> Transaction {
    let mut parsed = msg.parsed.clone();
    parsed.fields.length = msg.seen;
    let id = if s == 0 {
        ids::HTTP_REQUEST_BODY
    } else {
        ids::HTTP_RESPONSE_BODY
    };
    parsed.buffers.push((id, msg.body.clone()));
    parsed.buffers.push((ids::FILE_DATA, msg.body.clone()));
    transaction(s, msg.tx_id, &msg.head, &parsed, Some(&msg.body))
}

fn transaction(
    s: usize,
    tx_id: u64,
    head: &[u8],
    parsed: &Head,
    body: Option<&[u8]>,
) -> Transaction {
    let mut raw = head.to_vec();
    raw.extend_from_slice(body.unwrap_or(&[]));
    Transaction {
        proto: Proto::Http,
        direction: if s == 0 {
            Direction::ToServer
        } else {
            Direction::ToClient
        },
        tx_id,
        raw,
        buffers: parsed.buffers.clone(),
        fields: Fields::Http(parsed.fields.clone()),
    }
}

/// The request-side buffers a response's transaction repeats.
const REQUEST_ONLY: [u32; 7] = [
    ids::HTTP_URI,
    ids::HTTP_URI_RAW,
    ids::HTTP_METHOD,
    ids::HTTP_REQUEST_LINE,
    ids::HTTP_HOST,
    ids::HTTP_HOST_RAW,
    ids::HTTP_USER_AGENT,
];

fn merge_request(resp: &mut Head, req: &Head) {
    for (id, b) in &req.buffers {
        if REQUEST_ONLY.contains(id) {
            resp.buffers.push((*id, b.clone()));
        }
    }
    resp.buffers.sort_by_key(|(id, _)| *id);
    let f = &mut resp.fields;
    f.hostname = req.fields.hostname.clone();
    f.url = req.fields.url.clone();
    f.http_user_agent = req.fields.http_user_agent.clone();
    f.http_method = req.fields.http_method.clone();
    f.http_refer = req.fields.http_refer.clone();
}

/// The first line of a head, without its line end.
fn start_line(head: &[u8]) -> &[u8] {
    let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..end];
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The header block as sent: the lines after the start line, without the
/// blank line that ends the head.
fn header_block(head: &[u8]) -> &[u8] {
    let start = head
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |p| p + 1);
    let rest = &head[start..];
    let rest = rest
        .strip_suffix(b"\r\n")
        .or_else(|| rest.strip_suffix(b"\n"))
        .unwrap_or(rest);
    rest
}

fn version_str(v: Option<u8>) -> &'static [u8] {
    match v {
        Some(0) => b"HTTP/1.0",
        _ => b"HTTP/1.1",
    }
}

/// The headers' buffers shared by requests and responses.
fn header_buffers(
    headers: &[httparse::Header<'_>],
    head: &[u8],
    to_server: bool,
    buffers: &mut Vec<(u32, Vec<u8>)>,
) {
    let cookie_name = if to_server { "cookie" } else { "set-cookie" };
    let mut normal = Vec::new();
    let mut names = b"\r\n".to_vec();
    let mut singles: Vec<(u32, Vec<u8>)> = Vec::new();
    for h in headers {
        let value = h.value.trim_ascii();
        let lower = h.name.to_ascii_lowercase();
        names.extend_from_slice(h.name.as_bytes());
        names.extend_from_slice(b"\r\n");
        if lower == cookie_name {
            singles.push((ids::HTTP_COOKIE, value.to_vec()));
            continue;
        }
        if lower != "cookie" && lower != "set-cookie" {
            normal.extend_from_slice(h.name.as_bytes());
            normal.extend_from_slice(b": ");
            normal.extend_from_slice(value);
            normal.extend_from_slice(b"\r\n");
        }
        let id = match lower.as_str() {
            "content-type" => ids::HTTP_CONTENT_TYPE,
            "content-length" => ids::HTTP_CONTENT_LEN,
            "connection" => ids::HTTP_CONNECTION,
            "user-agent" if to_server => ids::HTTP_USER_AGENT,
            "accept" if to_server => ids::HTTP_ACCEPT,
            "referer" if to_server => ids::HTTP_REFERER,
            "accept-encoding" if to_server => ids::HTTP_ACCEPT_ENC,
            "accept-language" if to_server => ids::HTTP_ACCEPT_LANG,
            "server" if !to_server => ids::HTTP_SERVER,
            "location" if !to_server => ids::HTTP_LOCATION,
            _ => continue,
        };
        if !singles.iter().any(|(i, _)| *i == id) {
            singles.push((id, value.to_vec()));
        }
    }
    names.extend_from_slice(b"\r\n");
    buffers.extend(singles);
    if !headers.is_empty() {
        buffers.push((ids::HTTP_HEADER, normal));
        buffers.push((ids::HTTP_HEADER_RAW, header_block(head).to_vec()));
        buffers.push((ids::HTTP_HEADER_NAMES, names));
    }
    buffers.push((ids::HTTP_START, head.to_vec()));
}

fn first_header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.trim_ascii())
}

fn opt_text(b: Option<&[u8]>) -> Option<String> {
    b.map(text)
}

fn parse_request(head: &[u8]) -> Option<Head> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut storage);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let method = req.method?.as_bytes();
    let uri = req.path?.as_bytes();
    let headers = req.headers;
    let mut buffers = vec![
        (ids::HTTP_URI, normalize_uri(uri)),
        (ids::HTTP_URI_RAW, uri.to_vec()),
        (ids::HTTP_METHOD, method.to_vec()),
        (ids::HTTP_PROTOCOL, version_str(req.version).to_vec()),
        (ids::HTTP_REQUEST_LINE, start_line(head).to_vec()),
    ];
    let host_raw = first_header(headers, "host").or_else(|| uri_authority(uri));
    if let Some(raw) = host_raw {
        buffers.push((ids::HTTP_HOST, normalize_host(raw)));
        buffers.push((ids::HTTP_HOST_RAW, raw.to_vec()));
    }
    header_buffers(headers, head, true, &mut buffers);
    buffers.sort_by_key(|(id, _)| *id);
    let fields = HttpFields {
        hostname: host_raw.map(|h| text(&normalize_host(h))),
        url: Some(text(uri)),
        http_user_agent: opt_text(first_header(headers, "user-agent")),
        http_content_type: opt_text(first_header(headers, "content-type")),
        http_refer: opt_text(first_header(headers, "referer")),
        http_method: Some(text(method)),
        protocol: Some(text(version_str(req.version))),
        ..HttpFields::default()
    };
    Some(Head { buffers, fields })
}

fn parse_response(head: &[u8]) -> Option<Head> {
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut storage);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let code = resp.code?;
    let headers = resp.headers;
    let mut buffers = vec![
        (ids::HTTP_PROTOCOL, version_str(resp.version).to_vec()),
        (ids::HTTP_STAT_CODE, code.to_string().into_bytes()),
        (
            ids::HTTP_STAT_MSG,
            resp.reason.unwrap_or("").as_bytes().to_vec(),
        ),
        (ids::HTTP_RESPONSE_LINE, start_line(head).to_vec()),
    ];
    header_buffers(headers, head, false, &mut buffers);
    buffers.sort_by_key(|(id, _)| *id);
    let fields = HttpFields {
        http_content_type: opt_text(first_header(headers, "content-type")),
        protocol: Some(text(version_str(resp.version))),
        status: Some(code),
        redirect: opt_text(first_header(headers, "location")),
        ..HttpFields::default()
    };
    Some(Head { buffers, fields })
}

/// `host` of an absolute URI (`http://host:port/path`).
fn uri_authority(uri: &[u8]) -> Option<&[u8]> {
    let lower = uri.get(..8)?.to_ascii_lowercase();
    let rest = if lower.starts_with(b"http://") {
        &uri[7..]
    } else if lower.starts_with(b"https://") {
        &uri[8..]
    } else {
        return None;
    };
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    Some(&rest[..end]).filter(|a| !a.is_empty())
}

/// `http.host`: lower-cased, without the port (and without a userinfo).
pub fn normalize_host(raw: &[u8]) -> Vec<u8> {
    let raw = raw.trim_ascii();
    let raw = match raw.iter().rposition(|&b| b == b'@') {
        Some(at) => &raw[at + 1..],
        None => raw,
    };
    let host = if raw.first() == Some(&b'[') {
        match raw.iter().position(|&b| b == b']') {
            Some(end) => &raw[..=end],
            None => raw,
        }
    } else {
        match raw.iter().rposition(|&b| b == b':') {
            Some(c) if raw[c + 1..].iter().all(u8::is_ascii_digit) => &raw[..c],
            _ => raw,
        }
    };
    host.to_ascii_lowercase()
}

/// `http.uri`: an absolute URI reduced to its path and query, the path
/// percent-decoded with `//` collapsed and `.`/`..` segments resolved, the
/// query percent-decoded.
pub fn normalize_uri(raw: &[u8]) -> Vec<u8> {
    let raw = match uri_authority(raw) {
        Some(auth) => {
            let scheme = raw
                .windows(3)
                .position(|w| w == b"://")
                .map_or(0, |p| p + 3);
            &raw[(scheme + auth.len()).min(raw.len())..]
        }
        None => raw,
    };
    let (path, query) = match raw.iter().position(|&b| b == b'?') {
        Some(q) => (&raw[..q], Some(&raw[q..])),
        None => (raw, None),
    };
    let decoded = percent_decode(path);
    let mut out = resolve_dots(&decoded);
    if let Some(q) = query {
        out.extend_from_slice(&percent_decode(q));
    }
    out
}

fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

fn resolve_dots(path: &[u8]) -> Vec<u8> {
    if path.is_empty() {
        return Vec::new();
    }
    let absolute = path.first() == Some(&b'/');
    let trailing =
        path.len() > 1 && (path.ends_with(b"/") || path.ends_with(b"/.") || path.ends_with(b"/.."));
    let mut segs: Vec<&[u8]> = Vec::new();
    for seg in path.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut out = Vec::with_capacity(path.len());
    if absolute {
        out.push(b'/');
    }
    for (i, s) in segs.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(s);
    }
    if trailing && !segs.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(tx: &Transaction, id: u32) -> Option<String> {
        tx.buffers
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| text(b))
    }

    fn fields(tx: &Transaction) -> &HttpFields {
        match &tx.fields {
            Fields::Http(h) => h,
            other => panic!("not http: {other:?}"),
        }
    }

    #[test]
    fn a_request_split_anywhere_gives_the_same_buffers() {
        let req: &[u8] = b"GET /a/./b/../c//d%41?x=%31 HTTP/1.1\r\nHost: WWW.Example.COM:8080\r\nUser-Agent: curl/8\r\nCookie: s=1\r\nAccept: */*\r\n\r\n";
        for split in 1..req.len() {
            let mut f = HttpFlow::default();
            let mut txs = f.push(0, &req[..split]);
            txs.extend(f.push(0, &req[split..]));
            assert_eq!(txs.len(), 1, "split at {split}");
            let tx = &txs[0];
            assert_eq!(buf(tx, ids::HTTP_URI).as_deref(), Some("/a/c/dA?x=1"));
            assert_eq!(
                buf(tx, ids::HTTP_URI_RAW).as_deref(),
                Some("/a/./b/../c//d%41?x=%31")
            );
            assert_eq!(buf(tx, ids::HTTP_HOST).as_deref(), Some("www.example.com"));
            assert_eq!(
                buf(tx, ids::HTTP_HOST_RAW).as_deref(),
                Some("WWW.Example.COM:8080")
            );
            assert_eq!(buf(tx, ids::HTTP_USER_AGENT).as_deref(), Some("curl/8"));
            assert_eq!(buf(tx, ids::HTTP_COOKIE).as_deref(), Some("s=1"));
            assert_eq!(
                buf(tx, ids::HTTP_HEADER).as_deref(),
                Some("Host: WWW.Example.COM:8080\r\nUser-Agent: curl/8\r\nAccept: */*\r\n")
            );
            assert_eq!(
                buf(tx, ids::HTTP_HEADER_NAMES).as_deref(),
                Some("\r\nHost\r\nUser-Agent\r\nCookie\r\nAccept\r\n\r\n")
            );
            assert_eq!(buf(tx, ids::HTTP_PROTOCOL).as_deref(), Some("HTTP/1.1"));
            assert_eq!(
                buf(tx, ids::HTTP_REQUEST_LINE).as_deref(),
                Some("GET /a/./b/../c//d%41?x=%31 HTTP/1.1")
            );
        }
    }

    #[test]
    fn pipelined_requests_pair_with_their_responses() {
        let mut f = HttpFlow::default();
        let reqs = f.push(
            0,
            b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nxyz",
        );
        // Two heads, then the POST body.
        assert_eq!(reqs.len(), 3);
        assert_eq!(
            buf(&reqs[2], ids::HTTP_REQUEST_BODY).as_deref(),
            Some("xyz")
        );
        assert_eq!(buf(&reqs[2], ids::FILE_DATA).as_deref(), Some("xyz"));
        assert_eq!(reqs[2].tx_id, 1);
        let resps = f.push(
            1,
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        );
        assert_eq!(resps.len(), 3);
        assert_eq!(resps[0].tx_id, 0);
        assert_eq!(buf(&resps[0], ids::HTTP_STAT_CODE).as_deref(), Some("404"));
        assert_eq!(buf(&resps[0], ids::HTTP_URI).as_deref(), Some("/one"));
        assert_eq!(fields(&resps[0]).hostname.as_deref(), Some("a"));
        assert_eq!(resps[2].tx_id, 1);
        assert_eq!(
            buf(&resps[2], ids::HTTP_RESPONSE_BODY).as_deref(),
            Some("ok")
        );
        assert_eq!(buf(&resps[2], ids::HTTP_SERVER).as_deref(), Some("nginx"));
        let f2 = fields(&resps[2]);
        assert_eq!(f2.url.as_deref(), Some("/two"));
        assert_eq!(f2.status, Some(200));
        assert_eq!(f2.http_method.as_deref(), Some("POST"));
        assert_eq!(f2.length, 2);
    }

    #[test]
    fn bodies_are_capped_and_a_body_until_close_ends_at_close() {
        let mut f = HttpFlow::default();
        let mut txs = f.push(1, b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(txs.len(), 1);
        txs.extend(f.push(1, &vec![b'a'; BODY_LIMIT + 100]));
        assert_eq!(txs.len(), 2, "the body goes out at the cap");
        assert_eq!(
            buf(&txs[1], ids::HTTP_RESPONSE_BODY).map(|b| b.len()),
            Some(BODY_LIMIT)
        );
        assert!(f.push(1, b"more").is_empty());
        assert!(f.close(1).is_empty(), "already sent at the cap");

        let mut g = HttpFlow::default();
        g.push(1, b"HTTP/1.0 200 OK\r\n\r\nshort body");
        let closed = g.close(1);
        assert_eq!(closed.len(), 1);
        assert_eq!(
            buf(&closed[0], ids::FILE_DATA).as_deref(),
            Some("short body")
        );
    }

    #[test]
    fn hostile_heads_are_skipped_without_panic() {
        let mut f = HttpFlow::default();
        assert!(f.push(0, b"GET /\x01 HTTP/1.1\r\nHost\r\n\r\n").is_empty());
        let many: Vec<u8> = (0..300)
            .flat_map(|i| format!("X-{i}: v\r\n").into_bytes())
            .collect();
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.extend_from_slice(&many);
        req.extend_from_slice(b"\r\n");
        assert!(f.push(0, &req).is_empty(), "too many headers: not parsed");
        let ok = f.push(0, b"GET /next HTTP/1.1\r\n\r\n");
        assert_eq!(buf(&ok[0], ids::HTTP_URI).as_deref(), Some("/next"));
    }

    #[test]
    fn unanswered_requests_are_bounded() {
        let mut f = HttpFlow::default();
        let long = "a".repeat(3000);
        for i in 0..60 {
            f.push(0, format!("GET /{long}{i} HTTP/1.1\r\n\r\n").as_bytes());
        }
        assert!(f.pending.len() <= MAX_PENDING);
        assert!(f.pending_bytes <= MAX_PENDING_BYTES);
        let oldest = f.pending.front().map(|(id, _)| *id);
        assert!(oldest > Some(0), "the oldest requests were forgotten");
        let r = f.push(1, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            Some(r[0].tx_id),
            oldest,
            "pairs with the oldest kept request"
        );
    }

    #[test]
    fn uri_normalisation() {
        let n = |s: &str| text(&normalize_uri(s.as_bytes()));
        assert_eq!(n("/"), "/");
        assert_eq!(n("/a/b/"), "/a/b/");
        assert_eq!(n("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(n("/a/%2e%2e/b"), "/b");
        assert_eq!(n("http://Host:81/x/./y?q=%41"), "/x/y?q=A");
        assert_eq!(n("/a%zz"), "/a%zz");
        assert_eq!(n("/a/.."), "/");
        assert_eq!(text(&normalize_host(b"[::1]:80")), "[::1]");
        assert_eq!(text(&normalize_host(b"user@Ex.com")), "ex.com");
    }

    #[test]
    fn detection_by_content() {
        assert_eq!(looks_like_http(b"GET "), Some(true));
        assert_eq!(looks_like_http(b"HTT"), None);
        assert_eq!(looks_like_http(b"HTTP/1.1 200"), Some(true));
        assert_eq!(looks_like_http(b"SSH-2.0"), Some(false));
        assert_eq!(looks_like_http(b"\x16\x03\x01"), Some(false));
        assert_eq!(looks_like_http(b"EHLO x"), Some(false));
        assert_eq!(looks_like_http(b"PO"), None);
    }
}
