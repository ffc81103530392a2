//! Per-packet evaluation: one multi-pattern prefilter pass over the payload
//! finds the candidate rules, then each candidate's header and payload
//! conditions are verified. Rules without a positive content are checked on
//! every packet.

use aho_corasick::{AhoCorasick, MatchKind};

use crate::content::eval_ops;
use crate::ir::{Rule, RuleSet};
use crate::{FLOW_ESTABLISHED, FLOW_STREAM};

/// Which side of a flow sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Unknown,
    ToServer,
    ToClient,
}

/// The fields of one packet that rules look at; borrowed, so building one
/// costs nothing.
#[derive(Debug, Clone, Copy)]
pub struct PacketView<'a> {
    pub protocol: u8,
    /// Source address, IPv4 mapped into IPv6.
    pub src: u128,
    pub dst: u128,
    pub src_port: u16,
    pub dst_port: u16,
    pub direction: Direction,
    /// [`FLOW_ESTABLISHED`] | [`FLOW_STREAM`] bits.
    pub flow_flags: u32,
    /// Flow id (0 = no flow); keys per-flow state such as flowbits.
    pub flow_id: u64,
    /// IP version, 4 or 6.
    pub ip_version: u8,
    /// The whole network-layer packet (IP header onwards); empty for a
    /// reassembled stream chunk.
    pub l3: &'a [u8],
    /// Where the transport header starts within `l3`.
    pub l4_offset: usize,
    /// The payload content is matched against.
    pub payload: &'a [u8],
}

/// Reusable per-caller working memory, so matching allocates nothing per
/// packet once warmed up.
#[derive(Debug, Default)]
pub struct Scratch {
    stamp: Vec<u32>,
    generation: u32,
    candidates: Vec<u32>,
}

/// A rule set ready to evaluate packets.
#[derive(Debug)]
pub struct Matcher {
    set: RuleSet,
    prefilter: Option<AhoCorasick>,
    /// Prefilter pattern id → rules that use it as their fast pattern.
    pattern_rules: Vec<Vec<u32>>,
    /// Rules evaluated on every packet (no prefilter literal).
    always: Vec<u32>,
}

/// Error building the prefilter automaton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "building the prefilter failed: {}", self.0)
    }
}

impl std::error::Error for BuildError {}

impl Matcher {
    /// Build the prefilter for `set`.
    pub fn new(set: RuleSet) -> Result<Self, BuildError> {
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut index = std::collections::HashMap::<Vec<u8>, usize>::new();
        let mut pattern_rules: Vec<Vec<u32>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in set.rules.iter().enumerate() {
            let i = i as u32;
            match &rule.prefilter {
                Some(lit) if !lit.is_empty() => {
                    let id = *index.entry(lit.clone()).or_insert_with(|| {
                        literals.push(lit.clone());
                        pattern_rules.push(Vec::new());
                        literals.len() - 1
                    });
                    pattern_rules[id].push(i);
                }
                _ => always.push(i),
            }
        }
        let prefilter = if literals.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&literals)
                    .map_err(|e| BuildError(e.to_string()))?,
            )
        };
        Ok(Matcher {
            set,
            prefilter,
            pattern_rules,
            always,
        })
    }

    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }

    /// Append the indices of every rule matching `pkt` to `out`, in rule order.
    pub fn matches(&self, pkt: &PacketView<'_>, scratch: &mut Scratch, out: &mut Vec<u32>) {
        let n = self.set.rules.len();
        if scratch.stamp.len() != n {
            scratch.stamp = vec![0; n];
            scratch.generation = 0;
        }
        scratch.generation = scratch.generation.wrapping_add(1);
        if scratch.generation == 0 {
            scratch.stamp.iter_mut().for_each(|s| *s = 0);
            scratch.generation = 1;
        }
        let generation = scratch.generation;
        scratch.candidates.clear();
        scratch.candidates.extend_from_slice(&self.always);
        if let (Some(ac), false) = (&self.prefilter, pkt.payload.is_empty()) {
            for m in ac.find_overlapping_iter(pkt.payload) {
                let Some(rules) = self.pattern_rules.get(m.pattern().as_usize()) else {
                    continue;
                };
                for &r in rules {
                    if let Some(s) = scratch.stamp.get_mut(r as usize) {
                        if *s != generation {
                            *s = generation;
                            scratch.candidates.push(r);
                        }
                    }
                }
            }
        }
        scratch.candidates.sort_unstable();
        for &r in &scratch.candidates {
            if let Some(rule) = self.set.rules.get(r as usize) {
                if rule_matches(rule, pkt) {
                    out.push(r);
                }
            }
        }
    }
}

/// Header, flow and payload conditions of one rule.
pub fn rule_matches(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    header_matches(rule, pkt) && flow_matches(rule, pkt) && eval_ops(&rule.ops, pkt.payload)
}

fn header_matches(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    if !rule.proto.covers(pkt.protocol) {
        return false;
    }
    let has_ports = matches!(pkt.protocol, 6 | 17 | 132);
    let one_way = |src: u128, sp: u16, dst: u128, dp: u16| {
        rule.src.contains(src)
            && rule.dst.contains(dst)
            && if has_ports {
                rule.src_ports.contains(sp) && rule.dst_ports.contains(dp)
            } else {
                rule.src_ports.is_any() && rule.dst_ports.is_any()
            }
    };
    one_way(pkt.src, pkt.src_port, pkt.dst, pkt.dst_port)
        || (rule.bidirectional && one_way(pkt.dst, pkt.dst_port, pkt.src, pkt.src_port))
}

fn flow_matches(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    let f = &rule.flow;
    if let Some(to_server) = f.to_server {
        let want = if to_server {
            Direction::ToServer
        } else {
            Direction::ToClient
        };
        if pkt.direction != want {
            return false;
        }
    }
    if let Some(est) = f.established {
        if (pkt.flow_flags & FLOW_ESTABLISHED != 0) != est {
            return false;
        }
    }
    if let Some(stream) = f.stream {
        if (pkt.flow_flags & FLOW_STREAM != 0) != stream {
            return false;
        }
    }
    true
}
