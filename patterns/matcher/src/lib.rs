//! The rule-matching engine that runs inside every compiled IPS module.
//!
//! The pattern compiler (`sandgate-patterns`) lowers parsed rules into a
//! [`RuleSet`], serialises it with [`RuleSet::to_bytes`] and embeds the bytes
//! into the wasm guest (`sandgate-rules-guest`), which deserialises it once
//! per instance and evaluates packets with [`Matcher`]. The same code also
//! runs natively, which is how the benchmarks measure what the sandbox costs.
//!
//! Modules:
//! - [`app`]: application-layer buffer ids of interface 1.2.0 (HTTP, DNS,
//!   TLS, `file.data`) and the rule keywords that select them.
//! - [`ir`]: the compiled rule representation (header sets, payload ops).
//! - [`content`]: content search with Suricata's offset/depth/distance/within
//!   semantics and backtracking over relative matches.
//! - [`literals`]: the multi-literal prefilter (hashed 4-byte windows; cost
//!   per byte independent of the number of rules).
//! - [`matcher`]: candidate rules from the prefilter, per-packet evaluation.
//! - [`explain`]: why one rule did or did not match a packet, traced from
//!   the same evaluation (`sandgate-patc explain`).
//! - [`header`]: packet-header conditions (`ttl`, `flags`, `dsize`, ...).
//! - [`bytes`]: `byte_test`, `byte_jump`, `byte_extract`.
//! - [`pcre`]: PCRE translated and compiled to DFAs (compile time), searched
//!   at run time.
//! - [`flowbits`]: per-flow bit state behind the [`FlowStore`] trait.
//! - [`av`]: the AV engine — ClamAV-style body, hash and logical signatures
//!   matched by a streaming [`av::Scanner`] fed chunk by chunk.
//!
//! Start with [`Matcher::matches`].

pub mod app;
pub mod av;
pub mod bytes;
pub mod content;
pub mod explain;
pub mod flowbits;
pub mod header;
pub mod ir;
pub mod literals;
pub mod matcher;
pub mod pcre;

pub use flowbits::{FlowStore, MemoryFlowStore, NoFlowStore};
pub use ir::{
    Action, BitsModifier, Bsize, BufferOps, ByteExtract, ByteJump, ByteOp, ByteRead, ByteTest,
    Check, Content, Endian, FlowCond, FlowbitAction, FlowbitCheck, FormatError, IpOption, IpSet,
    IsDataAt, JumpFrom, NumBase, NumCond, Op, Pcre, PortSet, Proto, Rule, RuleMeta, RuleSet,
    Threshold, ThresholdKind, TrackBy, Value,
};
pub use matcher::{AppView, Direction, Matcher, PacketView, Scratch};

/// Bit in [`PacketView::flow_flags`]: the flow is established.
pub const FLOW_ESTABLISHED: u32 = 1;
/// Bit in [`PacketView::flow_flags`]: the payload is reassembled stream data.
pub const FLOW_STREAM: u32 = 2;
/// Bit in [`PacketView::flow_flags`]: this packet's payload is also delivered
/// inside a stream chunk. The rules matcher inspects both and lets the engine
/// report a rule once per packet; custom modules may use it to skip work.
pub const FLOW_PAYLOAD_IN_STREAM: u32 = 4;
/// Bit in [`PacketView::flow_flags`] (1.2.0): the entry is an
/// application-layer transaction, its buffers are the parsed fields.
pub const FLOW_APP_TX: u32 = 8;
