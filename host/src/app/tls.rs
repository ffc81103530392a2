//! TLS handshakes of one TCP flow: records are reassembled from the stream
//! (a record may span segments, a handshake message may span records),
//! handshake messages are parsed with `tls-parser` and certificates with
//! `x509-parser`.
//!
//! From the client: the ClientHello's SNI and JA3. From the server: the
//! ServerHello's version and JA3S, and the first certificate of the chain
//! (subject, issuer, serial, SHA-1 fingerprint). A direction stops being
//! parsed at its ChangeCipherSpec or first application data (what follows is
//! encrypted), at a record that is not TLS, or when a handshake message
//! exceeds [`MAX_HANDSHAKE`].

use md5::{Digest as _, Md5};
use serde_json::{json, Map, Value};
use sha1::Sha1;
use tls_parser::{TlsMessage, TlsMessageHandshake};

use super::{ids, js, put, Fields, Proto, Transaction};
use crate::flow::Direction;

/// Largest handshake message reassembled (a certificate chain fits).
pub const MAX_HANDSHAKE: usize = 64 * 1024;
/// Largest record accepted (2^14 plus the expansion TLS allows).
const MAX_RECORD: usize = (1 << 14) + 2048;

/// What EVE's `tls` object shows; filled as the handshake goes on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFields {
    pub sni: Option<String>,
    pub version: Option<String>,
    pub subject: Option<String>,
    pub issuerdn: Option<String>,
    pub serial: Option<String>,
    pub fingerprint: Option<String>,
    /// (hash, string)
    pub ja3: Option<(String, String)>,
    pub ja3s: Option<(String, String)>,
}

impl TlsFields {
    pub(crate) fn to_json(&self) -> Value {
        let mut o = Map::new();
        let s = |v: &Option<String>| v.as_ref().map(|v| js(v.as_str()));
        put(&mut o, "subject", s(&self.subject));
        put(&mut o, "issuerdn", s(&self.issuerdn));
        put(&mut o, "serial", s(&self.serial));
        put(&mut o, "fingerprint", s(&self.fingerprint));
        put(&mut o, "sni", s(&self.sni));
        put(&mut o, "version", s(&self.version));
        let pair = |p: &Option<(String, String)>| {
            p.as_ref().map(|(h, st)| json!({"hash": h, "string": st}))
        };
        put(&mut o, "ja3", pair(&self.ja3));
        put(&mut o, "ja3s", pair(&self.ja3s));
        Value::Object(o)
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "tls sni={} subject={}",
            self.sni.as_deref().unwrap_or("-"),
            self.subject.as_deref().unwrap_or("-")
        )
    }
}

/// Whether a direction starts with a TLS handshake record header
/// (content type 22, version 3.x).
pub fn looks_like_tls(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, minor, ..] if *minor <= 4)
}

#[derive(Debug, Default)]
struct Half {
    /// An incomplete record.
    record: Vec<u8>,
    /// Handshake bytes not yet forming a whole message.
    handshake: Vec<u8>,
    done: bool,
}

/// TLS state of one flow.
#[derive(Debug, Default)]
pub struct TlsFlow {
    halves: [Half; 2],
    fields: TlsFields,
    /// Server-side buffers seen so far (repeated in each server entry).
    server_buffers: Vec<(u32, Vec<u8>)>,
}

impl TlsFlow {
    /// Next in-order bytes of side `s` (0 to server, 1 to client).
    pub fn push(&mut self, s: usize, data: &[u8]) -> Vec<Transaction> {
        let mut out = Vec::new();
        let Some(half) = self.halves.get_mut(s) else {
            return out;
        };
        if half.done {
            return out;
        }
        half.record.extend_from_slice(data);
        let mut at = 0;
        let mut messages = Vec::new();
        loop {
            let half = &mut self.halves[s];
            let Some(hdr) = half.record.get(at..at + 5) else {
                break;
            };
            let (ctype, major, len) = (hdr[0], hdr[1], u16::from_be_bytes([hdr[3], hdr[4]]));
            if major != 3 || len as usize > MAX_RECORD || !(20..=24).contains(&ctype) {
                half.done = true;
                break;
            }
            let end = at + 5 + len as usize;
            if half.record.len() < end {
                break;
            }
            match ctype {
                22 => {
                    half.handshake.extend_from_slice(&half.record[at + 5..end]);
                    while let Some(msg) = next_message(&mut half.handshake, &mut half.done) {
                        messages.push(msg);
                    }
                }
                20 | 23 => half.done = true,
                _ => {}
            }
            at = end;
            if half.done {
                break;
            }
        }
        let half = &mut self.halves[s];
        if half.done {
            half.record = Vec::new();
            half.handshake = Vec::new();
        } else {
            half.record.drain(..at.min(half.record.len()));
        }
        for msg in messages {
            if let Some(tx) = self.message(s, &msg) {
                out.push(tx);
            }
        }
        out
    }

    fn message(&mut self, s: usize, msg: &[u8]) -> Option<Transaction> {
        let Ok((_, TlsMessage::Handshake(hs))) = tls_parser::parse_tls_message_handshake(msg)
        else {
            return None;
        };
        let buffers = match (s, hs) {
            (0, TlsMessageHandshake::ClientHello(ch)) => {
                let ext = Extensions::parse(ch.ext.unwrap_or(&[]));
                let ciphers: Vec<u16> = ch.ciphers.iter().map(|c| c.0).collect();
                let ja3 = format!(
                    "{},{},{},{},{}",
                    ch.version.0,
                    join(&ciphers),
                    join(&ext.types),
                    join(&ext.groups),
                    join(&ext.point_formats)
                );
                let hash = md5_hex(&ja3);
                self.fields.sni = ext.sni.as_ref().map(|s| super::text(s));
                self.fields.ja3 = Some((hash.clone(), ja3.clone()));
                let mut b = Vec::new();
                if let Some(sni) = ext.sni {
                    b.push((ids::TLS_SNI, sni));
                }
                b.push((ids::JA3_HASH, hash.into_bytes()));
                b.push((ids::JA3_STRING, ja3.into_bytes()));
                b
            }
            (1, TlsMessageHandshake::ServerHello(sh)) => {
                let ext = Extensions::parse(sh.ext.unwrap_or(&[]));
                let ja3s = format!("{},{},{}", sh.version.0, sh.cipher.0, join(&ext.types));
                let hash = md5_hex(&ja3s);
                let version = ext.selected_version.unwrap_or(sh.version.0);
                self.fields.version = Some(version_name(version).to_string());
                self.fields.ja3s = Some((hash.clone(), ja3s.clone()));
                self.server_buffers
                    .push((ids::JA3S_HASH, hash.into_bytes()));
                self.server_buffers
                    .push((ids::JA3S_STRING, ja3s.into_bytes()));
                self.server_buffers.clone()
            }
            (1, TlsMessageHandshake::Certificate(c)) => {
                let der = c.cert_chain.first()?.data;
                let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
                let subject = cert.subject().to_string();
                let issuer = cert.issuer().to_string();
                let serial = colon_hex(cert.raw_serial(), true);
                let fingerprint = colon_hex(&Sha1::digest(der), false);
                for (id, v) in [
                    (ids::TLS_CERT_SUBJECT, &subject),
                    (ids::TLS_CERT_ISSUER, &issuer),
                    (ids::TLS_CERT_SERIAL, &serial),
                    (ids::TLS_CERT_FINGERPRINT, &fingerprint),
                ] {
                    self.server_buffers.push((id, v.clone().into_bytes()));
                }
                self.server_buffers.sort_by_key(|(id, _)| *id);
                self.fields.subject = Some(subject);
                self.fields.issuerdn = Some(issuer);
                self.fields.serial = Some(serial);
                self.fields.fingerprint = Some(fingerprint);
                self.server_buffers.clone()
            }
            _ => return None,
        };
        Some(Transaction {
            proto: Proto::Tls,
            direction: if s == 0 {
                Direction::ToServer
            } else {
                Direction::ToClient
            },
            tx_id: 0,
            raw: msg.to_vec(),
            buffers,
            fields: Fields::Tls(self.fields.clone()),
        })
    }
}

/// Takes the next whole handshake message off `buf`; sets `done` when a
/// message is larger than [`MAX_HANDSHAKE`].
fn next_message(buf: &mut Vec<u8>, done: &mut bool) -> Option<Vec<u8>> {
    let hdr = buf.get(..4)?;
    let len = u32::from_be_bytes([0, hdr[1], hdr[2], hdr[3]]) as usize;
    if len > MAX_HANDSHAKE {
        *done = true;
        return None;
    }
    if buf.len() < 4 + len {
        return None;
    }
    Some(buf.drain(..4 + len).collect())
}

/// GREASE values (RFC 8701) that JA3 leaves out.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn join(v: &[u16]) -> String {
    v.iter()
        .filter(|&&x| !is_grease(x))
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join("-")
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn colon_hex(b: &[u8], upper: bool) -> String {
    b.iter()
        .map(|x| {
            if upper {
                format!("{x:02X}")
            } else {
                format!("{x:02x}")
            }
        })
        .collect::<Vec<_>>()
        .join(":")
}

/// Suricata's version names.
pub fn version_name(v: u16) -> &'static str {
    match v {
        0x0200 => "SSLv2",
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "UNDETERMINED",
    }
}

/// What JA3/JA3S and the buffers need from a hello's extensions.
#[derive(Debug, Default)]
struct Extensions {
    types: Vec<u16>,
    groups: Vec<u16>,
    point_formats: Vec<u16>,
    sni: Option<Vec<u8>>,
    /// `supported_versions` in a ServerHello: the negotiated version.
    selected_version: Option<u16>,
}

impl Extensions {
    /// Walks the extension block; a malformed tail ends the walk.
    fn parse(mut b: &[u8]) -> Extensions {
        let mut e = Extensions::default();
        while b.len() >= 4 {
            let t = u16::from_be_bytes([b[0], b[1]]);
            let len = u16::from_be_bytes([b[2], b[3]]) as usize;
            let Some(data) = b.get(4..4 + len) else {
                break;
            };
            e.types.push(t);
            match t {
                0 => e.sni = server_name(data),
                10 => {
                    let list = data.get(2..).unwrap_or(&[]);
                    e.groups = list
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                }
                11 => {
                    let list = data.get(1..).unwrap_or(&[]);
                    e.point_formats = list.iter().map(|&x| u16::from(x)).collect();
                }
                43 if data.len() == 2 => {
                    e.selected_version = Some(u16::from_be_bytes([data[0], data[1]]));
                }
                _ => {}
            }
            b = &b[4 + len..];
        }
        e
    }
}

/// The host name of a `server_name` extension.
fn server_name(data: &[u8]) -> Option<Vec<u8>> {
    let mut list = data.get(2..)?;
    while list.len() >= 3 {
        let kind = list[0];
        let len = u16::from_be_bytes([list[1], list[2]]) as usize;
        let name = list.get(3..3 + len)?;
        if kind == 0 {
            return Some(name.to_vec());
        }
        list = &list[3 + len..];
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A TLS 1.2 ClientHello record for `sni`, with a GREASE cipher.
    pub(crate) fn client_hello(sni: &str) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // session id
        let ciphers: [u16; 3] = [0x0a0a, 0xc02b, 0x002f];
        body.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
        for c in ciphers {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]); // compression: null
        let mut ext = Vec::new();
        let name = sni.as_bytes();
        let mut sn = ((name.len() + 3) as u16).to_be_bytes().to_vec();
        sn.push(0);
        sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sn.extend_from_slice(name);
        push_ext(&mut ext, 0, &sn);
        push_ext(&mut ext, 10, &[0, 4, 0, 0x1d, 0, 0x17]);
        push_ext(&mut ext, 11, &[1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        record(22, &handshake(1, &body))
    }

    /// A TLS 1.2 ServerHello record choosing 0xc02b.
    pub(crate) fn server_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[9u8; 32]);
        body.push(0);
        body.extend_from_slice(&[0xc0, 0x2b, 0]);
        let mut ext = Vec::new();
        push_ext(&mut ext, 0xff01, &[0]);
        push_ext(&mut ext, 11, &[1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        record(22, &handshake(2, &body))
    }

    /// A Certificate handshake message carrying `der`, as one record.
    pub(crate) fn certificate(der: &[u8]) -> Vec<u8> {
        let mut one = (der.len() as u32).to_be_bytes()[1..].to_vec();
        one.extend_from_slice(der);
        let mut body = (one.len() as u32).to_be_bytes()[1..].to_vec();
        body.extend_from_slice(&one);
        record(22, &handshake(11, &body))
    }

    fn push_ext(ext: &mut Vec<u8>, t: u16, data: &[u8]) {
        ext.extend_from_slice(&t.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    }

    fn handshake(t: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![t];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(body);
        m
    }

    pub(crate) fn record(ctype: u8, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![ctype, 3, 3];
        r.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        r.extend_from_slice(payload);
        r
    }

    fn buf(tx: &Transaction, id: u32) -> Option<String> {
        tx.buffers
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| super::super::text(b))
    }

    #[test]
    fn client_hello_split_anywhere_gives_sni_and_ja3() {
        let ch = client_hello("secure.example.net");
        for split in 1..ch.len() {
            let mut f = TlsFlow::default();
            let mut txs = f.push(0, &ch[..split]);
            txs.extend(f.push(0, &ch[split..]));
            assert_eq!(txs.len(), 1, "split at {split}");
            assert_eq!(
                buf(&txs[0], ids::TLS_SNI).as_deref(),
                Some("secure.example.net")
            );
            assert_eq!(
                buf(&txs[0], ids::JA3_STRING).as_deref(),
                Some("771,49195-47,0-10-11,29-23,0")
            );
            assert_eq!(
                buf(&txs[0], ids::JA3_HASH),
                Some(md5_hex("771,49195-47,0-10-11,29-23,0"))
            );
        }
    }

    #[test]
    fn a_handshake_message_spanning_records_is_reassembled() {
        let ch = client_hello("split.example");
        let msg = &ch[5..];
        let mut wire = record(22, &msg[..10]);
        wire.extend_from_slice(&record(22, &msg[10..]));
        let mut f = TlsFlow::default();
        let txs = f.push(0, &wire);
        assert_eq!(buf(&txs[0], ids::TLS_SNI).as_deref(), Some("split.example"));
    }

    #[test]
    fn server_hello_gives_ja3s_and_version_and_parsing_stops_at_ccs() {
        let mut f = TlsFlow::default();
        let mut wire = server_hello();
        wire.extend_from_slice(&record(20, &[1]));
        wire.extend_from_slice(&server_hello());
        let txs = f.push(1, &wire);
        assert_eq!(txs.len(), 1, "nothing after ChangeCipherSpec");
        assert_eq!(
            buf(&txs[0], ids::JA3S_STRING).as_deref(),
            Some("771,49195,65281-11")
        );
        match &txs[0].fields {
            Fields::Tls(t) => assert_eq!(t.version.as_deref(), Some("TLS 1.2")),
            _ => panic!("not tls"),
        }
    }

    #[test]
    fn hostile_records_stop_parsing_without_panic() {
        let mut f = TlsFlow::default();
        assert!(f.push(0, &[0x16, 3, 3, 0xff, 0xff]).is_empty());
        assert!(f.push(0, &client_hello("x")).is_empty(), "stopped");
        let mut g = TlsFlow::default();
        // A handshake header announcing 16 MiB.
        assert!(g.push(0, &record(22, &[1, 0xff, 0xff, 0xff])).is_empty());
        assert!(g.halves[0].done);
        // A garbage certificate.
        let mut h = TlsFlow::default();
        assert!(h.push(1, &certificate(b"not a certificate")).is_empty());
        assert_eq!(version_name(0x9999), "UNDETERMINED");
        assert!(is_grease(0x1a1a) && !is_grease(0x1a2a));
    }
}
