//! Application-layer parsing: HTTP/1.x, DNS and TLS transactions out of
//! reassembled TCP directions and UDP datagrams, with the buffers of
//! interface `sandgate:pattern@1.2.0` (ids from [`sandgate_matcher::app`])
//! and the fields EVE alerts show.
//!
//! - [`http`] parses the heads the host's one HTTP framing
//!   ([`crate::payload::Splitter`]) finds, collects bodies (capped at
//!   [`http::BODY_LIMIT`]) and pairs responses with requests.
//! - [`dns`] parses DNS messages (UDP datagrams, or length-prefixed on TCP).
//! - [`tls`] reassembles TLS records and handshake messages: ClientHello
//!   (SNI, JA3), ServerHello (JA3S, version), Certificate (subject, issuer,
//!   serial, SHA-1 fingerprint).
//!
//! [`AppLayer`] keeps the per-flow state: the protocol is detected from the
//! first bytes of the flow (an HTTP method or `HTTP/`, a TLS handshake record
//! header, DNS on port 53), not from the port alone, and every parser's state
//! is bounded and freed with the flow ([`AppLayer::forget`]).
//!
//! **When transactions are emitted.** HTTP: one when a message's head is
//! complete (so header rules fire without waiting for the body), and one
//! more carrying the body when the body completes, reaches the cap, or the
//! connection closes. DNS: one per message. TLS: one per ClientHello,
//! ServerHello and Certificate message. Entries of one transaction share its
//! [`Transaction::tx_id`], so the inspector alerts a rule at most once per
//! transaction even though the transaction is seen more than once.

pub mod dns;
pub mod http;
pub mod tls;

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::flow::Direction;

pub use sandgate_matcher::app as ids;

/// Application protocol of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Http,
    Dns,
    Tls,
}

impl Proto {
    /// The code of entry word 4, bits 16-23 (`sandgate_matcher::app::proto`).
    pub fn code(self) -> u8 {
        match self {
            Proto::Http => ids::proto::HTTP,
            Proto::Dns => ids::proto::DNS,
            Proto::Tls => ids::proto::TLS,
        }
    }

    /// Suricata's `app_proto` name.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Http => "http",
            Proto::Dns => "dns",
            Proto::Tls => "tls",
        }
    }
}

/// One side of an application-layer transaction, ready to become a batch
/// entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub proto: Proto,
    /// Which side sent it.
    pub direction: Direction,
    /// Transaction number within the flow: an HTTP request and its response
    /// share one; a DNS message uses its id; a TLS session is 0.
    pub tx_id: u64,
    /// The raw bytes of this side of the transaction as seen on the stream
    /// (HTTP: head plus de-chunked body up to the cap).
    pub raw: Vec<u8>,
    /// (buffer id, bytes), in the order the WIT table lists them.
    pub buffers: Vec<(u32, Vec<u8>)>,
    /// What an EVE alert on this transaction shows.
    pub fields: Fields,
}

/// Transaction fields as Suricata writes them in EVE.
#[derive(Debug, Clone, PartialEq)]
pub enum Fields {
    Http(http::HttpFields),
    Dns(dns::DnsFields),
    Tls(tls::TlsFields),
}

/// The application-layer part of an alert: `app_proto` plus the protocol's
/// EVE object (`http`, `dns` or `tls`), and the same in short for the text
/// alert line.
#[derive(Debug, Clone, PartialEq)]
pub struct AppEve {
    pub app_proto: &'static str,
    pub object: Value,
    pub summary: String,
}

impl Fields {
    /// The EVE form of these fields.
    pub fn eve(&self) -> AppEve {
        match self {
            Fields::Http(h) => AppEve {
                app_proto: "http",
                object: h.to_json(),
                summary: h.summary(),
            },
            Fields::Dns(d) => AppEve {
                app_proto: "dns",
                object: d.to_json(),
                summary: d.summary(),
            },
            Fields::Tls(t) => AppEve {
                app_proto: "tls",
                object: t.to_json(),
                summary: t.summary(),
            },
        }
    }
}

/// Bytes for JSON: valid UTF-8 as is, anything else lossily.
pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Inserts `key: value` into `o` when the value is present.
pub(crate) fn put(o: &mut serde_json::Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        o.insert(key.to_string(), v);
    }
}

/// Bytes a flow's undecided directions keep while waiting for enough of the
/// start to recognise the protocol.
const DETECT_BYTES: usize = 16;

/// What a flow speaks, once known.
enum FlowApp {
    /// Not enough bytes yet: the first bytes of each direction.
    Undecided([Vec<u8>; 2]),
    Http(Box<http::HttpFlow>),
    Tls(Box<tls::TlsFlow>),
    Dns(Box<[dns::TcpFramer; 2]>),
    /// None of the above: nothing kept.
    Other,
}

/// Per-flow application-layer state of every TCP flow, plus stateless DNS
/// over UDP.
#[derive(Default)]
pub struct AppLayer {
    flows: HashMap<u64, FlowApp>,
}

fn side(d: Direction) -> Option<usize> {
    match d {
        Direction::ToServer => Some(0),
        Direction::ToClient => Some(1),
        Direction::Unknown => None,
    }
}

/// The protocol a direction's first bytes announce, `None` when they are
/// too few to tell, `Some(None)` when none of ours.
fn detect(first: &[u8], ports: (u16, u16)) -> Option<Option<fn() -> FlowApp>> {
    if ports.0 == 53 || ports.1 == 53 {
        return Some(Some(|| FlowApp::Dns(Box::default())));
    }
    if first.len() >= 3 && tls::looks_like_tls(first) {
        return Some(Some(|| FlowApp::Tls(Box::default())));
    }
    match http::looks_like_http(first) {
        Some(true) => Some(Some(|| FlowApp::Http(Box::default()))),
        Some(false) if first.len() >= 3 || first.first() != Some(&0x16) => Some(None),
        _ if first.len() >= DETECT_BYTES => Some(None),
        _ => None,
    }
}

impl AppLayer {
    /// Flows with application-layer state now.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Feeds the next in-order bytes of one TCP direction (`ports` as
    /// (source, destination) of the sending side); the transactions they
    /// complete.
    pub fn stream(
        &mut self,
        flow_id: u64,
        direction: Direction,
        ports: (u16, u16),
        data: &[u8],
    ) -> Vec<Transaction> {
        let Some(s) = side(direction) else {
            return Vec::new();
        };
        if data.is_empty() {
            return Vec::new();
        }
        let state = self
            .flows
            .entry(flow_id)
            .or_insert_with(|| FlowApp::Undecided(Default::default()));
        if let FlowApp::Undecided(first) = state {
            let keep = DETECT_BYTES.saturating_sub(first[s].len()).min(data.len());
            first[s].extend_from_slice(&data[..keep]);
            let Some(found) = detect(&first[s], ports) else {
                return Vec::new();
            };
            let held = std::mem::take(first);
            *state = match found {
                Some(make) => make(),
                None => FlowApp::Other,
            };
            // Replay what the other side sent while undecided (the side that
            // decided is fed in full below, from its held bytes' start).
            let mut out = Vec::new();
            let other = 1 - s;
            if !held[other].is_empty() {
                out.extend(feed(state, other, &held[other]));
            }
            let before = held[s].len() - keep;
            out.extend(feed(state, s, &held[s][..before]));
            out.extend(feed(state, s, data));
            return out;
        }
        feed(state, s, data)
    }

    /// The sending side of `direction` closed (FIN/RST): transactions
    /// waiting for the end of the connection (an HTTP body until close).
    pub fn close(&mut self, flow_id: u64, direction: Direction) -> Vec<Transaction> {
        let (Some(s), Some(FlowApp::Http(h))) = (side(direction), self.flows.get_mut(&flow_id))
        else {
            return Vec::new();
        };
        h.close(s)
    }

    /// One UDP datagram: a DNS message when either port is 53.
    pub fn datagram(
        &mut self,
        direction: Direction,
        ports: (u16, u16),
        payload: &[u8],
    ) -> Vec<Transaction> {
        if ports.0 != 53 && ports.1 != 53 {
            return Vec::new();
        }
        dns::transaction(payload, direction).into_iter().collect()
    }

    /// Frees the state of flows the flow table evicted.
    pub fn forget(&mut self, flows: &[u64]) {
        for f in flows {
            self.flows.remove(f);
        }
    }
}

fn feed(state: &mut FlowApp, s: usize, data: &[u8]) -> Vec<Transaction> {
    if data.is_empty() {
        return Vec::new();
    }
    let direction = if s == 0 {
        Direction::ToServer
    } else {
        Direction::ToClient
    };
    match state {
        FlowApp::Http(h) => h.push(s, data),
        FlowApp::Tls(t) => t.push(s, data),
        FlowApp::Dns(f) => f[s]
            .push(data)
            .iter()
            .filter_map(|m| dns::transaction(m, direction))
            .collect(),
        FlowApp::Undecided(_) | FlowApp::Other => Vec::new(),
    }
}

/// JSON string value.
pub(crate) fn js(s: impl Into<String>) -> Value {
    json!(s.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buffer(tx: &Transaction, id: u32) -> Option<String> {
        tx.buffers
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| text(b))
    }

    #[test]
    fn http_is_recognised_on_any_port_and_split_starts_are_kept() {
        let mut app = AppLayer::default();
        assert!(app
            .stream(1, Direction::ToServer, (40000, 8081), b"GE")
            .is_empty());
        let txs = app.stream(
            1,
            Direction::ToServer,
            (40000, 8081),
            b"T /a HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        assert_eq!(txs.len(), 1);
        assert_eq!(txs[0].proto, Proto::Http);
        assert_eq!(buffer(&txs[0], ids::HTTP_URI).as_deref(), Some("/a"));
        assert_eq!(buffer(&txs[0], ids::HTTP_METHOD).as_deref(), Some("GET"));
    }

    #[test]
    fn other_protocols_keep_no_parser() {
        let mut app = AppLayer::default();
        assert!(app
            .stream(
                7,
                Direction::ToServer,
                (40000, 25),
                b"EHLO mail.example\r\n"
            )
            .is_empty());
        assert!(matches!(app.flows.get(&7), Some(FlowApp::Other)));
        app.forget(&[7]);
        assert_eq!(app.flows(), 0);
    }

    #[test]
    fn dns_over_udp_needs_port_53() {
        let mut app = AppLayer::default();
        let q = dns::tests::query(0x1234, "example.com", 1);
        assert!(app
            .datagram(Direction::ToServer, (5000, 5353), &q)
            .is_empty());
        let txs = app.datagram(Direction::ToServer, (5000, 53), &q);
        assert_eq!(txs.len(), 1);
        assert_eq!(
            buffer(&txs[0], ids::DNS_QUERY).as_deref(),
            Some("example.com")
        );
    }
}
