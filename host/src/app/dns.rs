//! DNS messages (RFC 1035): over UDP one per datagram, over TCP each
//! prefixed by its 2-byte length ([`TcpFramer`]).
//!
//! A small parser of our own: the header, the questions and the answer
//! records' names, types and A/AAAA/CNAME/PTR/NS data. Names follow
//! compression pointers only backwards and at most [`MAX_POINTERS`] times
//! and are at most 255 bytes, so a hostile message cannot loop or grow a
//! name without bound; records past [`MAX_RECORDS`] are not read.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Map, Value};

use super::{ids, js, text, Fields, Proto, Transaction};
use crate::flow::Direction;

/// Compression pointers followed per name.
pub const MAX_POINTERS: usize = 32;
/// Longest name in bytes (RFC 1035's limit on the wire form).
pub const MAX_NAME: usize = 255;
/// Questions or answers read per message.
pub const MAX_RECORDS: usize = 64;

/// Why a message was not parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("dns message truncated at byte {0}")]
    Truncated(usize),
    #[error("dns name at byte {0}: compression pointer loops or points forward")]
    BadPointer(usize),
    #[error("dns name at byte {0}: longer than 255 bytes")]
    NameTooLong(usize),
    #[error("dns name at byte {0}: reserved label type")]
    BadLabel(usize),
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Dotted name, raw label bytes.
    pub name: Vec<u8>,
    pub rrtype: u16,
}

/// One answer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub name: Vec<u8>,
    pub rrtype: u16,
    pub ttl: u32,
    /// Rendered data for A, AAAA, CNAME, PTR and NS; empty otherwise.
    pub rdata: String,
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: u16,
    pub response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub questions: Vec<Question>,
    pub answers: Vec<Answer>,
}

/// What EVE's `dns` object shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsFields {
    pub message: Message,
}

/// Suricata's rrtype names.
pub fn rrtype_name(t: u16) -> String {
    match t {
        1 => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        28 => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        other => other.to_string(),
    }
}

fn rcode_name(c: u8) -> String {
    match c {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        other => other.to_string(),
    }
}

impl DnsFields {
    pub(crate) fn to_json(&self) -> Value {
        let m = &self.message;
        let mut o = Map::new();
        o.insert(
            "type".into(),
            js(if m.response { "response" } else { "request" }),
        );
        o.insert("id".into(), Value::from(m.id));
        o.insert("opcode".into(), Value::from(m.opcode));
        let query: Vec<Value> = m
            .questions
            .iter()
            .map(|q| json!({"rrname": text(&q.name), "rrtype": rrtype_name(q.rrtype)}))
            .collect();
        o.insert("query".into(), Value::Array(query));
        if m.response {
            o.insert("rcode".into(), js(rcode_name(m.rcode)));
            let answers: Vec<Value> = m
                .answers
                .iter()
                .map(|a| {
                    json!({"rrname": text(&a.name), "rrtype": rrtype_name(a.rrtype),
                           "ttl": a.ttl, "rdata": a.rdata})
                })
                .collect();
            o.insert("answers".into(), Value::Array(answers));
        }
        Value::Object(o)
    }

    pub(crate) fn summary(&self) -> String {
        let names: Vec<String> = self
            .message
            .questions
            .iter()
            .map(|q| text(&q.name))
            .collect();
        format!("dns query={}", names.join(","))
    }
}

/// The transaction of one message, `None` when it does not parse. Only
/// requests carry `dns.query` buffers (Suricata matches `dns.query` on the
/// request side); responses still carry their fields for EVE.
pub fn transaction(msg: &[u8], direction: Direction) -> Option<Transaction> {
    let message = parse(msg).ok()?;
    let buffers = if message.response {
        Vec::new()
    } else {
        message
            .questions
            .iter()
            .map(|q| (ids::DNS_QUERY, q.name.clone()))
            .collect()
    };
    Some(Transaction {
        proto: Proto::Dns,
        direction,
        tx_id: u64::from(message.id),
        raw: msg.to_vec(),
        buffers,
        fields: Fields::Dns(DnsFields { message }),
    })
}

fn be16(m: &[u8], at: usize) -> Result<u16, DnsError> {
    m.get(at..at + 2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(DnsError::Truncated(at))
}

fn be32(m: &[u8], at: usize) -> Result<u32, DnsError> {
    m.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(DnsError::Truncated(at))
}

/// Reads the name at `at`; returns it dotted and the offset after it (after
/// the first pointer when it is compressed).
pub fn read_name(m: &[u8], at: usize) -> Result<(Vec<u8>, usize), DnsError> {
    let mut name = Vec::new();
    let mut pos = at;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *m.get(pos).ok_or(DnsError::Truncated(pos))?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let label = m
                    .get(pos + 1..pos + 1 + len as usize)
                    .ok_or(DnsError::Truncated(pos + 1))?;
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(label);
                if name.len() > MAX_NAME {
                    return Err(DnsError::NameTooLong(at));
                }
                pos += 1 + len as usize;
            }
            0xc0 => {
                let target = (be16(m, pos)? & 0x3fff) as usize;
                jumps += 1;
                if target >= pos || jumps > MAX_POINTERS {
                    return Err(DnsError::BadPointer(pos));
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(DnsError::BadLabel(pos)),
        }
    }
}

/// Parses one message.
pub fn parse(m: &[u8]) -> Result<Message, DnsError> {
    if m.len() < 12 {
        return Err(DnsError::Truncated(m.len()));
    }
    let id = be16(m, 0)?;
    let flags = be16(m, 2)?;
    let qd = be16(m, 4)? as usize;
    let an = be16(m, 6)? as usize;
    let mut pos = 12;
    let mut questions = Vec::new();
    for _ in 0..qd.min(MAX_RECORDS) {
        let (name, next) = read_name(m, pos)?;
        let rrtype = be16(m, next)?;
        be16(m, next + 2)?;
        pos = next + 4;
        questions.push(Question { name, rrtype });
    }
    let mut answers = Vec::new();
    if qd <= MAX_RECORDS {
        for _ in 0..an.min(MAX_RECORDS) {
            let Ok((name, next)) = read_name(m, pos) else {
                break;
            };
            let (Ok(rrtype), Ok(ttl), Ok(rdlen)) =
                (be16(m, next), be32(m, next + 4), be16(m, next + 8))
            else {
                break;
            };
            let start = next + 10;
            let Some(rdata) = m.get(start..start + rdlen as usize) else {
                break;
            };
            let rdata = match (rrtype, rdata.len()) {
                (1, 4) => Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]).to_string(),
                (28, 16) => {
                    let mut b = [0u8; 16];
                    b.copy_from_slice(rdata);
                    Ipv6Addr::from(b).to_string()
                }
                (2 | 5 | 12, _) => read_name(m, start)
                    .map(|(n, _)| text(&n))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            answers.push(Answer {
                name,
                rrtype,
                ttl,
                rdata,
            });
            pos = start + rdlen as usize;
        }
    }
    Ok(Message {
        id,
        response: flags & 0x8000 != 0,
        opcode: ((flags >> 11) & 0xf) as u8,
        rcode: (flags & 0xf) as u8,
        questions,
        answers,
    })
}

/// Splits one TCP direction into length-prefixed DNS messages; it holds at
/// most one incomplete message (under 64 KiB, the prefix's range).
#[derive(Debug, Default)]
pub struct TcpFramer {
    buf: Vec<u8>,
    /// Framing lost (a message shorter than a header): ignored from here on.
    dead: bool,
}

impl TcpFramer {
    /// The next in-order bytes; the complete messages they finish.
    pub fn push(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if self.dead {
            return out;
        }
        self.buf.extend_from_slice(data);
        while let Some(len) = self.buf.get(..2).map(|b| u16::from_be_bytes([b[0], b[1]])) {
            let len = len as usize;
            if len < 12 {
                self.dead = true;
                self.buf = Vec::new();
                break;
            }
            if self.buf.len() < 2 + len {
                break;
            }
            out.push(self.buf[2..2 + len].to_vec());
            self.buf.drain(..2 + len);
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A query for `name` (type `qtype`), id `id`.
    pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    /// The response to [`query`] with one A record (compressed name).
    pub(crate) fn answer(id: u16, name: &str, addr: [u8; 4]) -> Vec<u8> {
        let mut m = query(id, name, 1);
        m[2] = 0x81;
        m[3] = 0x80;
        m[7] = 1;
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]);
        m.extend_from_slice(&addr);
        m
    }

    #[test]
    fn queries_and_answers() {
        let q = parse(&query(7, "www.example.org", 28)).unwrap();
        assert!(!q.response);
        assert_eq!(q.questions[0].name, b"www.example.org");
        assert_eq!(q.questions[0].rrtype, 28);
        let a = parse(&answer(7, "example.org", [93, 184, 216, 34])).unwrap();
        assert!(a.response);
        assert_eq!(a.answers[0].name, b"example.org");
        assert_eq!(a.answers[0].rdata, "93.184.216.34");
        assert_eq!(a.answers[0].ttl, 3600);
        let tx = transaction(&answer(7, "example.org", [1, 2, 3, 4]), Direction::ToClient).unwrap();
        assert!(tx.buffers.is_empty(), "responses carry no dns.query");
        let v = match &tx.fields {
            Fields::Dns(d) => d.to_json(),
            _ => unreachable!(),
        };
        assert_eq!(v["query"][0]["rrname"], "example.org");
        assert_eq!(v["query"][0]["rrtype"], "A");
        assert_eq!(v["rcode"], "NOERROR");
    }

    #[test]
    fn hostile_names_are_refused() {
        // Pointer to itself.
        let mut m = query(1, "a", 1);
        m.truncate(12);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadPointer(12)));
        // Forward pointer.
        let mut m = query(1, "a", 1);
        m.truncate(12);
        m.extend_from_slice(&[0xc0, 20, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadPointer(12)));
        // A name over 255 bytes.
        let long = ["abcdefghijklmnopqrstuvwxyz0123456789"; 8].join(".");
        assert!(matches!(
            parse(&query(1, &long, 1)),
            Err(DnsError::NameTooLong(12))
        ));
        // Reserved label type, truncation.
        let mut m = query(1, "a", 1);
        m[12] = 0x40;
        assert_eq!(parse(&m), Err(DnsError::BadLabel(12)));
        let m = query(1, "example.com", 1);
        for cut in 0..m.len() {
            assert!(parse(&m[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn tcp_messages_are_framed_across_segments() {
        let q = query(9, "tcp.example", 1);
        let mut wire = (q.len() as u16).to_be_bytes().to_vec();
        wire.extend_from_slice(&q);
        wire.extend_from_slice(&wire.clone());
        let mut f = TcpFramer::default();
        let mut got = Vec::new();
        for b in wire.chunks(5) {
            got.extend(f.push(b));
        }
        assert_eq!(got, vec![q.clone(), q]);
        let mut bad = TcpFramer::default();
        assert!(bad.push(&[0, 3, 1, 2, 3]).is_empty());
        assert!(bad.push(&wire).is_empty(), "framing lost: ignored");
    }
}
