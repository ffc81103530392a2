//! [`Described`]: a module's `describe` answer and the lines it logged
//! giving it, and the file format the artifact cache keeps it in, so a load
//! from the cache need not instantiate the module and decode its rule set.
//!
//! Layout (all fixed-size fields first):
//!
//! ```text
//! "SGDESC\0" + format (u8)   8 bytes; FORMAT below
//! key                        32 bytes: what the answer was computed for
//! SHA-256 of the payload     32 bytes: catches damage a decoder would miss
//! payload                    postcard of the mirror types below
//! ```
//!
//! The payload uses its own serde mirrors of the WIT types, so the stored
//! format is pinned here (a WIT change breaks the conversion at compile
//! time, and bumping [`FORMAT`] retires old files) rather than following
//! generated code. Decoding never trusts a file: wrong magic, format, key or
//! checksum, or a payload that does not decode, is `None` and the caller
//! calls `describe` again. What a file yields still goes through the same
//! checks as a fresh answer (`module::check_described`).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::LogLine;
use crate::wit::{self, ModuleInfo};

/// Stored format; bump on any change to the layout or the mirror types, or
/// to what the host functions answer a module during `describe` (the key
/// covers the component, wasmtime's configuration and the limits, not this
/// crate's code).
pub(crate) const FORMAT: u8 = 1;
const MAGIC: &[u8; 7] = b"SGDESC\0";
const HEADER: usize = 8 + 32 + 32;

/// A `describe` answer and the log lines of the load (instantiation and
/// `describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Described {
    pub(crate) info: ModuleInfo,
    pub(crate) logs: Vec<LogLine>,
}

/// The file bytes for `described`, computed for `key`.
pub(crate) fn encode(key: &[u8; 32], described: &Described) -> Option<Vec<u8>> {
    let payload = postcard::to_allocvec(&Stored::from(described)).ok()?;
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(FORMAT);
    out.extend_from_slice(key);
    out.extend_from_slice(&Sha256::digest(&payload));
    out.extend_from_slice(&payload);
    Some(out)
}

/// The answer in `file` if it is intact, in this format and computed for
/// `key`; `None` otherwise.
pub(crate) fn decode(key: &[u8; 32], file: &[u8]) -> Option<Described> {
    let (header, payload) = file.split_at_checked(HEADER)?;
    let (magic, rest) = header.split_at(MAGIC.len());
    let (format, rest) = rest.split_at(1);
    let (stored_key, checksum) = rest.split_at(32);
    if magic != MAGIC || format != [FORMAT] || stored_key != key {
        return None;
    }
    if Sha256::digest(payload).as_slice() != checksum {
        return None;
    }
    let (stored, rest) = postcard::take_from_bytes::<Stored>(payload).ok()?;
    if !rest.is_empty() {
        return None;
    }
    Some(stored.into())
}

#[derive(Serialize, Deserialize)]
struct Stored {
    name: String,
    version: String,
    kind: Kind,
    rules: Vec<Rule>,
    fuel_per_packet: u64,
    fuel_per_byte: u64,
    logs: Vec<Log>,
}

#[derive(Serialize, Deserialize)]
enum Kind {
    Ips,
    Av,
}

#[derive(Serialize, Deserialize)]
enum Action {
    Alert,
    Drop,
    Reject,
    Pass,
}

#[derive(Serialize, Deserialize)]
struct Rule {
    gid: u32,
    sid: u32,
    rev: u32,
    action: Action,
    msg: String,
    classtype: Option<String>,
    priority: Option<u32>,
    references: Vec<String>,
    metadata: Vec<String>,
    thresholds: Vec<Threshold>,
}

#[derive(Serialize, Deserialize)]
struct Threshold {
    kind: ThresholdKind,
    track: Track,
    count: u32,
    seconds: u32,
}

#[derive(Serialize, Deserialize)]
enum ThresholdKind {
    Limit,
    Threshold,
    Both,
    DetectionFilter,
}

#[derive(Serialize, Deserialize)]
enum Track {
    Src,
    Dst,
    Both,
    Rule,
    Flow,
}

#[derive(Serialize, Deserialize)]
struct Log {
    level: Level,
    message: String,
}

#[derive(Serialize, Deserialize)]
enum Level {
    Error,
    Warn,
    Info,
    Debug,
}

impl From<&Described> for Stored {
    fn from(d: &Described) -> Self {
        let i = &d.info;
        Stored {
            name: i.name.clone(),
            version: i.version.clone(),
            kind: match i.kind {
                wit::ModuleKind::Ips => Kind::Ips,
                wit::ModuleKind::Av => Kind::Av,
            },
            rules: i.rules.iter().map(Rule::from).collect(),
            fuel_per_packet: i.fuel_per_packet,
            fuel_per_byte: i.fuel_per_byte,
            logs: d
                .logs
                .iter()
                .map(|l| Log {
                    level: match l.level {
                        wit::Level::Error => Level::Error,
                        wit::Level::Warn => Level::Warn,
                        wit::Level::Info => Level::Info,
                        wit::Level::Debug => Level::Debug,
                    },
                    message: l.message.clone(),
                })
                .collect(),
        }
    }
}

impl From<&wit::RuleInfo> for Rule {
    fn from(r: &wit::RuleInfo) -> Self {
        Rule {
            gid: r.gid,
            sid: r.sid,
            rev: r.rev,
            action: match r.action {
                wit::Action::Alert => Action::Alert,
                wit::Action::Drop => Action::Drop,
                wit::Action::Reject => Action::Reject,
                wit::Action::Pass => Action::Pass,
            },
            msg: r.msg.clone(),
            classtype: r.classtype.clone(),
            priority: r.priority,
            references: r.references.clone(),
            metadata: r.metadata.clone(),
            thresholds: r
                .thresholds
                .iter()
                .map(|t| Threshold {
                    kind: match t.kind {
                        wit::ThresholdKind::Limit => ThresholdKind::Limit,
                        wit::ThresholdKind::Threshold => ThresholdKind::Threshold,
                        wit::ThresholdKind::Both => ThresholdKind::Both,
                        wit::ThresholdKind::DetectionFilter => ThresholdKind::DetectionFilter,
                    },
                    track: match t.track {
                        wit::TrackBy::BySrc => Track::Src,
                        wit::TrackBy::ByDst => Track::Dst,
                        wit::TrackBy::ByBoth => Track::Both,
                        wit::TrackBy::ByRule => Track::Rule,
                        wit::TrackBy::ByFlow => Track::Flow,
                    },
                    count: t.count,
                    seconds: t.seconds,
                })
                .collect(),
        }
    }
}

impl From<Stored> for Described {
    fn from(s: Stored) -> Self {
        Described {
            info: ModuleInfo {
                name: s.name,
                version: s.version,
                kind: match s.kind {
                    Kind::Ips => wit::ModuleKind::Ips,
                    Kind::Av => wit::ModuleKind::Av,
                },
                rules: s.rules.into_iter().map(wit::RuleInfo::from).collect(),
                fuel_per_packet: s.fuel_per_packet,
                fuel_per_byte: s.fuel_per_byte,
            },
            logs: s
                .logs
                .into_iter()
                .map(|l| LogLine {
                    level: match l.level {
                        Level::Error => wit::Level::Error,
                        Level::Warn => wit::Level::Warn,
                        Level::Info => wit::Level::Info,
                        Level::Debug => wit::Level::Debug,
                    },
                    message: l.message,
                })
                .collect(),
        }
    }
}

impl From<Rule> for wit::RuleInfo {
    fn from(r: Rule) -> Self {
        wit::RuleInfo {
            gid: r.gid,
            sid: r.sid,
            rev: r.rev,
            action: match r.action {
                Action::Alert => wit::Action::Alert,
                Action::Drop => wit::Action::Drop,
                Action::Reject => wit::Action::Reject,
                Action::Pass => wit::Action::Pass,
            },
            msg: r.msg,
            classtype: r.classtype,
            priority: r.priority,
            references: r.references,
            metadata: r.metadata,
            thresholds: r
                .thresholds
                .into_iter()
                .map(|t| wit::ThresholdSpec {
                    kind: match t.kind {
                        ThresholdKind::Limit => wit::ThresholdKind::Limit,
                        ThresholdKind::Threshold => wit::ThresholdKind::Threshold,
                        ThresholdKind::Both => wit::ThresholdKind::Both,
                        ThresholdKind::DetectionFilter => wit::ThresholdKind::DetectionFilter,
                    },
                    track: match t.track {
                        Track::Src => wit::TrackBy::BySrc,
                        Track::Dst => wit::TrackBy::ByDst,
                        Track::Both => wit::TrackBy::ByBoth,
                        Track::Rule => wit::TrackBy::ByRule,
                        Track::Flow => wit::TrackBy::ByFlow,
                    },
                    count: t.count,
                    seconds: t.seconds,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Described {
        Described {
            info: ModuleInfo {
                name: "et".into(),
                version: "1".into(),
                kind: wit::ModuleKind::Ips,
                rules: vec![wit::RuleInfo {
                    gid: 1,
                    sid: 2_000_001,
                    rev: 3,
                    action: wit::Action::Drop,
                    msg: "ET TEST".into(),
                    classtype: Some("trojan-activity".into()),
                    priority: Some(1),
                    references: vec!["url,example.com/x".into()],
                    metadata: vec!["created_at 2020_01_01".into()],
                    thresholds: vec![wit::ThresholdSpec {
                        kind: wit::ThresholdKind::DetectionFilter,
                        track: wit::TrackBy::ByFlow,
                        count: 5,
                        seconds: 60,
                    }],
                }],
                fuel_per_packet: 20_000,
                fuel_per_byte: 90,
            },
            logs: vec![LogLine {
                level: wit::Level::Info,
                message: "1 rule".into(),
            }],
        }
    }

    #[test]
    fn round_trips_and_refuses_other_keys_and_damage() {
        let key = [7u8; 32];
        let file = encode(&key, &sample()).expect("encode");
        assert_eq!(decode(&key, &file), Some(sample()));
        assert_eq!(decode(&[8u8; 32], &file), None, "another key");
        for cut in [0, 10, HEADER, file.len() - 1] {
            assert_eq!(decode(&key, &file[..cut]), None, "truncated at {cut}");
        }
        let mut flipped = file.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(decode(&key, &flipped), None, "payload bit flip");
        let mut old = file;
        old[7] = FORMAT + 1;
        assert_eq!(decode(&key, &old), None, "another format");
    }
}
