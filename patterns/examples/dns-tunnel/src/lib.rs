//! DNS tunnelling heuristic: tools such as iodine or dnscat2 carry data in
//! the labels of DNS query names, encoded as base32/base64/hex. Such labels
//! are long and look random; ordinary host names are short and wordy.
//!
//! The module parses the query name of every UDP packet to port 53 that is
//! a query (QR bit clear) and reports:
//!
//! - sid 9100001 — a label that looks encoded: at least [`MIN_LABEL`]
//!   bytes, Shannon entropy at least [`MIN_ENTROPY`] bits per byte, and at
//!   least one digit in [`DIGIT_SHARE`] bytes. Entropy alone is not enough —
//!   a long English label reaches 4 bits — but base32 and hex data carry
//!   digits (about 19 % and 62 %) and host-name words rarely do;
//! - sid 9100002 — a query name longer than [`MAX_NAME`] bytes (the textual
//!   form; tunnels fill names towards the 253-byte limit);
//! - sid 9100003 — a query whose name cannot be parsed (a label running past
//!   the packet, a compression pointer or reserved label type in a query, no
//!   terminating root label): garbage on port 53.
//!
//! Parsing never panics: every read is bounds-checked.

use sandgate_pattern_sdk::{export_inspector, Hits, Inspector, Packet, Rule};

/// Labels shorter than this are never reported as high entropy.
pub const MIN_LABEL: usize = 32;
/// Bits of entropy per byte from which a long label may be encoded.
pub const MIN_ENTROPY: f64 = 3.3;
/// An encoded label has at least one digit per this many bytes.
pub const DIGIT_SHARE: usize = 10;
/// Query names longer than this are reported.
pub const MAX_NAME: usize = 180;

pub const SID_ENCODED_LABEL: u32 = 9_100_001;
pub const SID_LONG_NAME: u32 = 9_100_002;
pub const SID_MALFORMED: u32 = 9_100_003;

/// Why a query name could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum NameError {
    /// The DNS header is shorter than 12 bytes or has no question.
    NoQuestion,
    /// A label runs past the end of the packet, or the name never ends.
    Truncated,
    /// A compression pointer or a reserved label type (queries have none).
    BadLabel(u8),
}

/// The labels of the first question of a DNS message, if it is a query.
/// `Ok(None)` for a response.
pub fn query_labels(msg: &[u8]) -> Result<Option<Vec<&[u8]>>, NameError> {
    let header = msg.get(..12).ok_or(NameError::NoQuestion)?;
    if header[2] & 0x80 != 0 {
        return Ok(None);
    }
    if u16::from_be_bytes([header[4], header[5]]) == 0 {
        return Err(NameError::NoQuestion);
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let len = *msg.get(at).ok_or(NameError::Truncated)?;
        if len == 0 {
            return Ok(Some(labels));
        }
        if len & 0xc0 != 0 {
            return Err(NameError::BadLabel(len));
        }
        let label = msg
            .get(at + 1..at + 1 + usize::from(len))
            .ok_or(NameError::Truncated)?;
        labels.push(label);
        at += 1 + usize::from(len);
    }
}

/// Whether a query label looks like encoded data; see the module doc.
pub fn looks_encoded(label: &[u8]) -> bool {
    let digits = label.iter().filter(|b| b.is_ascii_digit()).count();
    label.len() >= MIN_LABEL && digits * DIGIT_SHARE >= label.len() && entropy(label) >= MIN_ENTROPY
}

/// Shannon entropy of `bytes`, in bits per byte (0 for an empty slice).
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[usize::from(b)] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[derive(Default)]
pub struct DnsTunnel;

impl Inspector for DnsTunnel {
    fn rules() -> Vec<Rule> {
        vec![
            Rule::new(
                SID_ENCODED_LABEL,
                "SANDGATE DNS tunnelling: long high-entropy label in query",
            )
            .classtype("bad-unknown")
            .reference("url,attack.mitre.org/techniques/T1071/004/")
            .metadata("module dns-tunnel"),
            Rule::new(
                SID_LONG_NAME,
                "SANDGATE DNS tunnelling: very long query name",
            )
            .classtype("bad-unknown")
            .metadata("module dns-tunnel"),
            Rule::new(
                SID_MALFORMED,
                "SANDGATE DNS malformed query name on port 53",
            )
            .classtype("protocol-command-decode")
            .metadata("module dns-tunnel"),
        ]
    }

    fn inspect(&mut self, pkt: &Packet<'_>, hits: &mut Hits<'_>) {
        if !pkt.is_udp() || pkt.dst_port() != 53 {
            return;
        }
        let labels = match query_labels(pkt.payload()) {
            Ok(Some(labels)) => labels,
            Ok(None) => return,
            Err(_) => {
                hits.alert(SID_MALFORMED);
                return;
            }
        };
        if labels.iter().any(|l| looks_encoded(l)) {
            hits.alert(SID_ENCODED_LABEL);
        }
        // Textual length: the labels plus the dots between them.
        let name_len =
            labels.iter().map(|l| l.len()).sum::<usize>() + labels.len().saturating_sub(1);
        if name_len > MAX_NAME {
            hits.alert(SID_LONG_NAME);
        }
    }
}

export_inspector!(DnsTunnel);

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    #[test]
    fn names_parse_and_garbage_is_an_error_not_a_panic() {
        let q = query("www.example.com");
        let labels = query_labels(&q).unwrap().unwrap();
        assert_eq!(labels, [&b"www"[..], b"example", b"com"]);
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert_eq!(query_labels(&resp), Ok(None));
        assert_eq!(query_labels(&q[..20]), Err(NameError::Truncated));
        assert_eq!(query_labels(&q[..5]), Err(NameError::NoQuestion));
        let mut ptr = q[..12].to_vec();
        ptr.extend_from_slice(&[0xc0, 0x0c]);
        assert_eq!(query_labels(&ptr), Err(NameError::BadLabel(0xc0)));
        for n in 0..64 {
            let garbage: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let _ = query_labels(&garbage);
        }
    }

    #[test]
    fn encoded_labels_look_encoded_and_long_words_do_not() {
        assert!(looks_encoded(b"mx3ocp5yvqhfkz2tgj4nwa7rbe6dsil0u9"));
        assert!(looks_encoded(b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"));
        // Over 4 bits of entropy, but words without digits.
        assert!(!looks_encoded(
            b"thisisaverylongbutquiteordinaryhostnamelabel"
        ));
        assert!(!looks_encoded(
            b"cdn-images-production-eu-west-1-static-assets"
        ));
        assert!(!looks_encoded(b"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"));
        assert!(!looks_encoded(b"mx3ocp5yvqhfkz2t"), "too short");
        assert_eq!(entropy(b""), 0.0);
    }
}
