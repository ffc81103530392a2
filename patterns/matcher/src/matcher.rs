//! Per-packet evaluation: one multi-literal prefilter pass over the payload
//! ([`crate::literals`]) finds the candidate rules, then each candidate's header and payload
//! conditions are verified. Rules without a positive content are checked on
//! every packet. Candidates run in Suricata's flowbits order (rules that set
//! flowbits before rules that only read them), so a bit set by one rule is
//! seen by another on the same packet.

use crate::content::eval_ops;
use crate::flowbits::{names_tag, Bits, FlowStore, NoFlowStore};
use crate::ir::{FlowCond, FlowbitAction, FlowbitCheck, Rule, RuleSet};
use crate::literals::LiteralSet;
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

/// The application-layer side of a transaction entry (1.2.0): its app
/// protocol and its parsed buffers as `(buffer id, bytes)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppView<'a> {
    /// [`crate::app::proto`] code, 0 for none.
    pub proto: u8,
    /// The entry's buffers; an id may appear more than once (`dns.query`).
    pub buffers: &'a [(u32, &'a [u8])],
}

/// Reusable per-caller working memory, so matching allocates nothing per
/// packet once warmed up.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Candidate rules of the current entry, one bit per evaluation
    /// position (see [`Matcher`]'s `order`); all zero between calls.
    candidates: Vec<u64>,
    /// Literals found in the current entry (see [`LiteralSet::scan`]);
    /// all zero between calls.
    seen: Vec<u64>,
    pub(crate) bits: Bits,
}

/// Marks evaluation position `pos` as a candidate.
#[inline(always)]
fn mark(set: &mut [u64], pos: u32) {
    if let Some(w) = set.get_mut(pos as usize / 64) {
        *w |= 1u64 << (pos % 64);
    }
}

/// A rule set ready to evaluate packets.
#[derive(Debug)]
pub struct Matcher {
    set: RuleSet,
    /// Packet and stream rules (no application-layer data).
    packet: Prefilter,
    /// Application-layer rules, evaluated on transaction entries only; the
    /// prefilter scans the entry's payload and every buffer.
    app: Prefilter,
    /// Evaluation position → rule index: rules in Suricata's flowbits order
    /// (setters before readers), by index within a rank. Candidates are a
    /// bitset over positions, so walking it in order needs no sort.
    order: Vec<u32>,
    /// Whether any rule uses flowbits (so per-flow bits are loaded).
    uses_flowbits: bool,
    /// Tag of the flowbit numbering, stored with each flow's state.
    tag: [u8; 4],
}

/// One multi-pattern prefilter over a group of rules.
#[derive(Debug, Default)]
struct Prefilter {
    literals: LiteralSet,
    /// Literal id → evaluation positions of the rules that use it as their
    /// fast pattern.
    pattern_rules: Vec<Vec<u32>>,
    /// Evaluation positions of the rules evaluated on every entry (no
    /// prefilter literal).
    always: Vec<u32>,
}

impl Prefilter {
    /// The prefilter of `rules`, given as (evaluation position, rule).
    fn new<'r>(rules: impl Iterator<Item = (u32, &'r Rule)>) -> Self {
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut index = std::collections::HashMap::<Vec<u8>, usize>::new();
        let mut pattern_rules: Vec<Vec<u32>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules {
            match &rule.prefilter {
                Some(lit) if !lit.is_empty() => {
                    let folded = lit.to_ascii_lowercase();
                    let id = *index.entry(folded.clone()).or_insert_with(|| {
                        literals.push(folded);
                        pattern_rules.push(Vec::new());
                        literals.len() - 1
                    });
                    pattern_rules[id].push(i);
                }
                _ => always.push(i),
            }
        }
        Prefilter {
            literals: LiteralSet::new(&literals),
            pattern_rules,
            always,
        }
    }

    fn has_rules(&self) -> bool {
        !self.literals.is_empty() || !self.always.is_empty()
    }

    /// Marks the rules whose literal occurs in `hay` as candidates.
    fn scan(&self, hay: &[u8], seen: &mut [u64], candidates: &mut [u64]) {
        self.literals.scan(hay, seen, |lit| {
            for &pos in self
                .pattern_rules
                .get(lit as usize)
                .map_or(&[][..], Vec::as_slice)
            {
                mark(candidates, pos);
            }
        });
    }
}

impl Matcher {
    /// Build the prefilter for `set` (tables sized by the literals: it
    /// cannot fail).
    pub fn new(set: RuleSet) -> Self {
        let uses_flowbits = set
            .rules
            .iter()
            .any(|r| !r.flowbit_checks.is_empty() || !r.flowbit_actions.is_empty());
        let rank = |r: &Rule| match (!r.flowbit_actions.is_empty(), !r.flowbit_checks.is_empty()) {
            (true, true) => 0u8,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };
        let mut order: Vec<u32> = (0..set.rules.len() as u32).collect();
        if uses_flowbits {
            order.sort_by_key(|&i| (set.rules.get(i as usize).map_or(3, rank), i));
        }
        let by_position = || {
            order
                .iter()
                .enumerate()
                .filter_map(|(pos, &i)| Some((pos as u32, set.rules.get(i as usize)?)))
        };
        let packet = Prefilter::new(by_position().filter(|(_, r)| !r.is_app()));
        let app = Prefilter::new(by_position().filter(|(_, r)| r.is_app()));
        let tag = names_tag(&set.flowbits);
        Matcher {
            set,
            packet,
            app,
            order,
            uses_flowbits,
            tag,
        }
    }

    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }

    /// Append the indices of every rule matching `pkt` to `out`, in rule
    /// order. Flowbits live for this packet only; see [`Matcher::matches_with`].
    pub fn matches(&self, pkt: &PacketView<'_>, scratch: &mut Scratch, out: &mut Vec<u32>) {
        self.matches_with(pkt, scratch, &mut NoFlowStore, out);
    }

    /// [`Matcher::matches`] with per-flow flowbits kept in `store`: loaded
    /// once before the packet's rules run and written back once if changed.
    /// `noalert` rules are evaluated (and set flowbits) but not reported.
    pub fn matches_with(
        &self,
        pkt: &PacketView<'_>,
        scratch: &mut Scratch,
        store: &mut dyn FlowStore,
        out: &mut Vec<u32>,
    ) {
        self.matches_inner(pkt, None, scratch, store, out, |_, _| {});
    }

    /// [`Matcher::matches_with`], calling `probe(rule, bits)` just before
    /// each candidate rule is evaluated, with the flowbits it will see
    /// (how [`crate::explain`] traces one rule exactly as it runs).
    pub(crate) fn matches_probed(
        &self,
        pkt: &PacketView<'_>,
        scratch: &mut Scratch,
        store: &mut dyn FlowStore,
        out: &mut Vec<u32>,
        probe: impl FnMut(u32, &Bits),
    ) {
        self.matches_inner(pkt, None, scratch, store, out, probe);
    }

    /// Whether the rule set has application-layer rules (so a 1.2.0 module
    /// needs the transaction entries).
    pub fn has_app_rules(&self) -> bool {
        self.app.has_rules()
    }

    /// [`Matcher::matches_with`] for one entry of a 1.2.0 batch: with `app`
    /// `None` (a packet or stream chunk) only rules without application-layer
    /// data run, exactly as in 1.0.0; with `app` set (a transaction entry,
    /// flagged [`crate::FLOW_APP_TX`]) only application-layer rules run, their
    /// buffer conditions on `app.buffers` and their other payload conditions
    /// on the entry's payload (the raw transaction bytes).
    pub fn matches_entry(
        &self,
        pkt: &PacketView<'_>,
        app: Option<&AppView<'_>>,
        scratch: &mut Scratch,
        store: &mut dyn FlowStore,
        out: &mut Vec<u32>,
    ) {
        self.matches_inner(pkt, app, scratch, store, out, |_, _| {});
    }

    fn matches_inner(
        &self,
        pkt: &PacketView<'_>,
        app: Option<&AppView<'_>>,
        scratch: &mut Scratch,
        store: &mut dyn FlowStore,
        out: &mut Vec<u32>,
        mut probe: impl FnMut(u32, &Bits),
    ) {
        let words = self.order.len().div_ceil(64);
        if scratch.candidates.len() != words {
            scratch.candidates = vec![0; words];
        }
        let group = if app.is_some() {
            &self.app
        } else {
            &self.packet
        };
        let literals = group.literals.len().div_ceil(64);
        if scratch.seen.len() < literals {
            scratch.seen = vec![0; literals];
        }
        let Scratch {
            candidates,
            seen,
            bits,
        } = scratch;
        for &pos in &group.always {
            mark(candidates, pos);
        }
        group.scan(pkt.payload, seen, candidates);
        if let Some(app) = app {
            for (_, bytes) in app.buffers {
                group.scan(bytes, seen, candidates);
            }
        }
        seen.iter_mut().for_each(|w| *w = 0);
        if self.uses_flowbits {
            bits.load(store, pkt.flow_id, self.tag);
        }
        let first = out.len();
        for (w, word) in candidates.iter_mut().enumerate() {
            // Taking the word leaves the set empty for the next call.
            let mut word = std::mem::take(word);
            while word != 0 {
                let pos = w * 64 + word.trailing_zeros() as usize;
                word &= word - 1;
                let Some(&r) = self.order.get(pos) else {
                    continue;
                };
                let Some(rule) = self.set.rules.get(r as usize) else {
                    continue;
                };
                probe(r, bits);
                let matched = match app {
                    None => rule_matches_bits(rule, pkt, bits),
                    Some(app) => app_rule_matches(rule, pkt, app, bits),
                };
                if !matched {
                    continue;
                }
                if pkt.flow_id != 0 {
                    for a in &rule.flowbit_actions {
                        match *a {
                            FlowbitAction::Set(b) => bits.set(b, true),
                            FlowbitAction::Unset(b) => bits.set(b, false),
                            FlowbitAction::Toggle(b) => {
                                let on = bits.get(b);
                                bits.set(b, !on);
                            }
                        }
                    }
                }
                if !rule.noalert {
                    out.push(r);
                }
            }
        }
        if let Some(found) = out.get_mut(first..) {
            found.sort_unstable();
        }
        if self.uses_flowbits && pkt.flow_id != 0 {
            bits.save(store, pkt.flow_id);
        }
    }
}

/// Header, flow and payload conditions of one rule, with no flowbit set.
pub fn rule_matches(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    rule_matches_bits(rule, pkt, &Bits::default())
}

/// Every condition of one rule, reading flowbits from `bits`.
pub(crate) fn rule_matches_bits(rule: &Rule, pkt: &PacketView<'_>, bits: &Bits) -> bool {
    let on_stream = pkt.flow_flags & FLOW_STREAM != 0;
    if on_stream && !stream_capable(rule) {
        return false;
    }
    header_matches(rule, pkt)
        && flow_matches(rule, pkt)
        && rule.checks.iter().all(|c| c.holds(pkt))
        && flowbits_hold(rule, pkt, bits)
        && payload_matches(rule, pkt, on_stream)
}

/// Every condition of an application-layer rule on a transaction entry:
/// the app protocol (when the rule names one), the header and flow, the
/// payload conditions on the raw transaction bytes and each buffer's
/// conditions on that buffer (any instance).
fn app_rule_matches(rule: &Rule, pkt: &PacketView<'_>, app: &AppView<'_>, bits: &Bits) -> bool {
    (rule.app_proto == 0 || rule.app_proto == app.proto)
        && header_matches(rule, pkt)
        && flow_matches_app(rule, pkt)
        && rule.checks.iter().all(|c| c.holds(pkt))
        && flowbits_hold(rule, pkt, bits)
        && eval_ops(&rule.ops, pkt.payload)
        && rule.buffers.iter().all(|b| {
            app.buffers
                .iter()
                .any(|(id, bytes)| *id == b.id && eval_ops(&b.ops, bytes))
        })
}

/// `flow` on a transaction entry: direction and established as on packets;
/// the stream options do not apply (a transaction is parsed from the stream).
fn flow_matches_app(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    let f = FlowCond {
        stream: None,
        ..rule.flow
    };
    flow_matches_cond(&f, pkt)
}

/// Whether a rule is inspected on reassembled stream chunks as well as on
/// packets: rules with payload conditions and no header keywords or
/// `dsize` (those describe one packet), unless `no_stream`. The engine
/// reports a rule at most once per packet, so a match found both in a
/// packet and in the chunk it completed is one alert.
pub(crate) fn stream_capable(rule: &Rule) -> bool {
    !rule.ops.is_empty() && rule.checks.is_empty() && rule.flow.stream != Some(false)
}

/// The payload conditions; on a stream chunk, a match lying wholly in the
/// already-inspected prefix (`l3`, see the WIT) was reported before.
pub(crate) fn payload_matches(rule: &Rule, pkt: &PacketView<'_>, on_stream: bool) -> bool {
    if !eval_ops(&rule.ops, pkt.payload) {
        return false;
    }
    let prefix = if on_stream { pkt.l3.len() } else { 0 };
    match pkt.payload.get(..prefix) {
        Some(old) if prefix > 0 => !eval_ops(&rule.ops, old),
        _ => true,
    }
}

/// `isset` / `isnotset`; like Suricata, neither holds on a packet without a flow.
pub(crate) fn flowbits_hold(rule: &Rule, pkt: &PacketView<'_>, bits: &Bits) -> bool {
    if rule.flowbit_checks.is_empty() {
        return true;
    }
    if pkt.flow_id == 0 {
        return false;
    }
    rule.flowbit_checks.iter().all(|c| match c {
        FlowbitCheck::IsSet(list) => list.iter().any(|&b| bits.get(b)),
        FlowbitCheck::IsNotSet(list) => list.iter().any(|&b| !bits.get(b)),
    })
}

pub(crate) fn header_matches(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    if !rule.proto.covers(pkt.ip_version, pkt.protocol) {
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

pub(crate) fn flow_matches(rule: &Rule, pkt: &PacketView<'_>) -> bool {
    flow_matches_cond(&rule.flow, pkt)
}

fn flow_matches_cond(f: &FlowCond, pkt: &PacketView<'_>) -> bool {
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
