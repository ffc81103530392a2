//! The compiled rule representation: what the compiler emits and the guest
//! evaluates. Everything here is plain data (serde), so a rule set is built
//! once on the vendor's build farm and shipped inside the module.

use serde::{Deserialize, Serialize};

pub use crate::header::{BitsModifier, Check, IpOption, NumCond};
pub use crate::pcre::Regex;

/// Format version of the serialised [`RuleSet`]; bumped on any layout change.
pub const FORMAT_VERSION: u32 = 3;

/// Most `byte_extract` variables one rule may define.
pub const MAX_VARS: usize = 8;

/// A whole compiled rule set, as embedded in one module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSet {
    pub format: u32,
    pub name: String,
    pub version: String,
    pub rules: Vec<Rule>,
    /// Flowbit names; a name's index is its bit in the per-flow state.
    pub flowbits: Vec<String>,
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
            flowbits: Vec::new(),
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

/// Which IP packets a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Proto {
    /// Any IP packet.
    Ip,
    Tcp,
    Udp,
    /// ICMP and ICMPv6.
    Icmp,
    /// `icmpv4`: ICMP over IPv4 only.
    Icmp4,
    /// `icmpv6`: ICMPv6 only.
    Icmp6,
    /// `ipv4`: any IPv4 packet.
    Ip4,
    /// `ipv6`: any IPv6 packet.
    Ip6,
}

impl Proto {
    /// Whether a packet of IP version `v` and protocol number `p` is covered.
    pub fn covers(self, v: u8, p: u8) -> bool {
        match self {
            Proto::Ip => true,
            Proto::Tcp => p == 6,
            Proto::Udp => p == 17,
            Proto::Icmp => p == 1 || p == 58,
            Proto::Icmp4 => p == 1,
            Proto::Icmp6 => p == 58,
            Proto::Ip4 => v == 4,
            Proto::Ip6 => v == 6,
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

/// A number in a rule: a constant, or a `byte_extract` variable (its slot)
/// read when the rule is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Const(i64),
    Var(u8),
}

/// One `content` match with its modifiers, as Suricata reads them: `offset`
/// and `depth` are absolute, `distance` and `within` relative to the end of
/// the previous match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The bytes to find; lower-cased already when `nocase`.
    pub pattern: Vec<u8>,
    pub nocase: bool,
    pub negated: bool,
    /// The match starts at or after this offset.
    pub offset: Option<Value>,
    /// The match ends at or before `offset + depth`.
    pub depth: Option<Value>,
    /// The match starts at or after `previous end + distance` (may be negative).
    pub distance: Option<Value>,
    /// The match ends within this many bytes after `previous end + distance`.
    pub within: Option<Value>,
    /// The match must end at the end of the buffer.
    pub endswith: bool,
}

impl Content {
    /// Whether this content is anchored to the previous match.
    pub fn is_relative(&self) -> bool {
        self.distance.is_some() || self.within.is_some()
    }
}

/// A `pcre` condition; the regex was compiled by the rule compiler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pcre {
    pub regex: Regex,
    /// `R`: search from the end of the previous match.
    pub relative: bool,
    /// `pcre:!"..."`: the regex must not match.
    pub negated: bool,
}

/// `isdataat:[!]N[,relative]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsDataAt {
    pub at: Value,
    pub relative: bool,
    pub negated: bool,
}

/// Byte order of a binary number read from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Endian {
    Big,
    Little,
}

/// Base of a number written as text in the payload (`string,hex|dec|oct`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NumBase {
    Hex,
    Dec,
    Oct,
}

/// Where and how the `byte_*` keywords read a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRead {
    /// 1..=8 for binary, 1..=23 for text.
    pub nbytes: u8,
    pub offset: Value,
    pub relative: bool,
    pub endian: Endian,
    /// `Some` when the bytes are ASCII digits (`string`).
    pub string: Option<NumBase>,
    /// `bitmask`: AND the value, then shift right by the mask's trailing zeros.
    pub bitmask: Option<u64>,
}

/// `byte_test` comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ByteOp {
    Lt,
    Gt,
    Eq,
    Le,
    Ge,
    /// `&`: any bit in common.
    And,
    /// `^`: the values differ in some bit.
    Xor,
}

/// `byte_test`: compare a number read from the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteTest {
    pub read: ByteRead,
    pub op: ByteOp,
    /// `!` before the operator.
    pub negated: bool,
    pub value: Value,
}

/// Where `byte_jump` jumps from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JumpFrom {
    /// The end of the bytes read (the default).
    Read,
    /// `from_beginning`: the start of the buffer.
    Beginning,
    /// `from_end`: the end of the buffer.
    End,
}

/// `byte_jump`: read a length and move the cursor by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteJump {
    pub read: ByteRead,
    pub multiplier: u32,
    /// Round the value up to a multiple of 4.
    pub align: bool,
    pub from: JumpFrom,
    pub post_offset: i32,
}

/// `byte_extract`: read a number into a variable; the cursor moves past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteExtract {
    pub read: ByteRead,
    pub var: u8,
    pub multiplier: u32,
    /// Round up to a multiple of this (0 = no rounding, else 2 or 4).
    pub align: u8,
}

/// One payload condition, evaluated in rule order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Content(Content),
    /// Boxed: a compiled regex is much larger than the other ops.
    Pcre(Box<Pcre>),
    IsDataAt(IsDataAt),
    ByteTest(ByteTest),
    ByteJump(ByteJump),
    ByteExtract(ByteExtract),
    /// `bsize` / `urilen`: the buffer's length lies in `min..=max`.
    Bsize(Bsize),
}

/// `bsize:N`, `bsize:<N`, `bsize:>N`, `bsize:N<>M` (and `urilen`, the same
/// on the URI buffer): inclusive bounds on the length of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bsize {
    pub min: u64,
    pub max: u64,
}

/// The payload conditions of a rule on one application-layer buffer
/// (1.2.0): `ops` in rule order, evaluated with their own cursor, so
/// `distance`/`within` are relative to the previous match in the same
/// buffer. For a buffer with several instances (`dns.query`, one per name)
/// the conditions hold when they hold on any instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferOps {
    /// Buffer id ([`crate::app`]).
    pub id: u32,
    pub ops: Vec<Op>,
}

impl Op {
    /// Whether the op starts from the previous op's cursor, so a failure
    /// should make the previous match retry at its next occurrence.
    pub fn is_relative(&self) -> bool {
        match self {
            Op::Content(c) => c.is_relative(),
            Op::Pcre(p) => p.relative,
            Op::IsDataAt(d) => d.relative,
            Op::ByteTest(b) => b.read.relative,
            Op::ByteJump(b) => b.read.relative,
            Op::ByteExtract(b) => b.read.relative,
            Op::Bsize(_) => false,
        }
    }
}

/// A `flowbits` condition: holds when *any* listed bit is (not) set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowbitCheck {
    IsSet(Vec<u16>),
    IsNotSet(Vec<u16>),
}

/// A `flowbits` action, applied when the whole rule matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FlowbitAction {
    Set(u16),
    Unset(u16),
    Toggle(u16),
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
    /// Packet-header conditions (`ttl`, `flags`, `dsize`, ...), checked
    /// before the payload.
    pub checks: Vec<Check>,
    pub flowbit_checks: Vec<FlowbitCheck>,
    pub flowbit_actions: Vec<FlowbitAction>,
    /// `noalert`: the rule matches (and sets flowbits) but reports nothing.
    pub noalert: bool,
    pub ops: Vec<Op>,
    /// The literal the prefilter looks for (lower-cased; matched without
    /// case), or `None` when the rule has no positive content and must be
    /// evaluated on every packet. For an application-layer rule it may come
    /// from a buffer's content; the prefilter then scans the buffers too.
    pub prefilter: Option<Vec<u8>>,
    /// Application protocol the rule needs (`alert http ...`; codes of
    /// [`crate::app::proto`]), 0 for none.
    pub app_proto: u8,
    /// Conditions on application-layer buffers (1.2.0), per buffer.
    pub buffers: Vec<BufferOps>,
}

impl Rule {
    /// Whether the rule needs application-layer data (an app protocol or a
    /// buffer): it is evaluated only on transaction entries, and only
    /// modules built for interface 1.2.0 can carry it.
    pub fn is_app(&self) -> bool {
        self.app_proto != 0 || !self.buffers.is_empty()
    }
}
