//! The compiled rule representation: what the compiler emits and the guest
//! evaluates. Everything here is plain data (serde), so a rule set is built
//! once on the vendor's build farm and shipped inside the module.

use serde::{Deserialize, Serialize};

/// Format version of the serialised [`RuleSet`]; bumped on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// A whole compiled rule set, as embedded in one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    pub format: u32,
    pub name: String,
    pub version: String,
    pub rules: Vec<Rule>,
}

/// Error from [`RuleSet::to_bytes`] / [`RuleSet::from_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl core::fmt::Display for FormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "rule set data: {}", self.0)
    }
}

impl std::error::Error for FormatError {}

impl RuleSet {
    /// An empty rule set with the current format version.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        RuleSet {
            format: FORMAT_VERSION,
            name: name.into(),
            version: version.into(),
            rules: Vec::new(),
        }
    }

    /// Serialise for embedding into a module.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        postcard::to_allocvec(self).map_err(|e| FormatError(e.to_string()))
    }

    /// Deserialise embedded rule data, checking the format version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let set: RuleSet =
            postcard::from_bytes(bytes).map_err(|e| FormatError(format!("corrupt: {e}")))?;
        if set.format != FORMAT_VERSION {
            return Err(FormatError(format!(
                "format {} but this matcher reads format {}",
                set.format, FORMAT_VERSION
            )));
        }
        Ok(set)
    }
}

/// What a matched rule asks the engine to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Alert,
    Drop,
    Reject,
    Pass,
}

/// How a threshold counts, mirroring the WIT `threshold-kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ThresholdKind {
    Limit,
    Threshold,
    Both,
    DetectionFilter,
}

/// What a threshold keeps its counters per, mirroring the WIT `track-by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrackBy {
    BySrc,
    ByDst,
    ByBoth,
    ByRule,
    ByFlow,
}

/// Alert rate control for a rule; applied by the engine, declared here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Threshold {
    pub kind: ThresholdKind,
    pub track: TrackBy,
    pub count: u32,
    pub seconds: u32,
}

/// The part of a rule an alert shows; becomes the WIT `rule-info`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMeta {
    pub gid: u32,
    pub sid: u32,
    pub rev: u32,
    pub action: Action,
    pub msg: String,
    pub classtype: Option<String>,
    pub priority: Option<u32>,
    pub references: Vec<String>,
    pub metadata: Vec<String>,
    pub thresholds: Vec<Threshold>,
}

/// Which IP protocols a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proto {
    /// Any IP packet.
    Ip,
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
}

impl Proto {
    /// Whether a packet with IP protocol number `p` is covered.
    pub fn covers(self, p: u8) -> bool {
        match self {
            Proto::Ip => true,
            Proto::Tcp => p == 6,
            Proto::Udp => p == 17,
            Proto::Icmp => p == 1 || p == 58,
        }
    }
}

/// A set of IP addresses as sorted, disjoint, inclusive ranges over the
/// IPv6 space (IPv4 mapped to `::ffff:a.b.c.d`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpSet {
    pub ranges: Vec<(u128, u128)>,
}

impl IpSet {
    /// Every address.
    pub fn any() -> Self {
        IpSet {
            ranges: vec![(0, u128::MAX)],
        }
    }

    /// Whether the set holds every address (lets evaluation skip it).
    pub fn is_any(&self) -> bool {
        self.ranges.len() == 1 && self.ranges[0] == (0, u128::MAX)
    }

    pub fn contains(&self, addr: u128) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < addr);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= addr)
    }
}

/// A set of ports as sorted, disjoint, inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PortSet {
    pub ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// Every port.
    pub fn any() -> Self {
        PortSet {
            ranges: vec![(0, u16::MAX)],
        }
    }

    pub fn is_any(&self) -> bool {
        self.ranges.len() == 1 && self.ranges[0] == (0, u16::MAX)
    }

    pub fn contains(&self, port: u16) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < port);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= port)
    }
}

/// Conditions of the `flow` keyword; `None` means "don't care".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowCond {
    /// `Some(true)` = to_server, `Some(false)` = to_client.
    pub to_server: Option<bool>,
    pub established: Option<bool>,
    /// `Some(true)` = only_stream, `Some(false)` = no_stream.
    pub stream: Option<bool>,
}

/// One `content` match with its modifiers, already normalised:
/// `depth` is stored as an absolute end (offset + depth), as Suricata does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The bytes to find; lower-cased already when `nocase`.
    pub pattern: Vec<u8>,
    pub nocase: bool,
    pub negated: bool,
    /// Absolute: the match starts at or after this offset.
    pub offset: u32,
    /// Absolute: the match ends at or before this offset.
    pub depth_end: Option<u32>,
    /// Relative to the end of the previous match (may be negative).
    pub distance: Option<i32>,
    /// Relative: the match ends within this many bytes after
    /// `previous end + distance`.
    pub within: Option<u32>,
    /// The match must end at the end of the buffer.
    pub endswith: bool,
}

impl Content {
    /// Whether this content is anchored to the previous match.
    pub fn is_relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

/// One payload condition, evaluated in rule order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Content(Content),
}

/// One compiled rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub meta: RuleMeta,
    pub proto: Proto,
    pub src: IpSet,
    pub src_ports: PortSet,
    pub dst: IpSet,
    pub dst_ports: PortSet,
    /// `<>`: the header also matches with source and destination swapped.
    pub bidirectional: bool,
    pub flow: FlowCond,
    pub ops: Vec<Op>,
    /// The literal the prefilter looks for (lower-cased; matched without
    /// case), or `None` when the rule has no positive content and must be
    /// evaluated on every packet.
    pub prefilter: Option<Vec<u8>>,
}
