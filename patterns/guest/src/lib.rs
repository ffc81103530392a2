//! The rules module guest: [`sandgate_matcher`] behind the
//! `sandgate:pattern@1.0.0` `ips-module` world.
//!
//! This crate is compiled once, when Sandgate itself is built, to a core wasm
//! module for `wasm32-unknown-unknown` (no WASI imports). The pattern compiler
//! then appends the serialised rule set as a data segment, patches the
//! [`DESCRIPTOR`] to point at it, and wraps the result as a component — so
//! compiling rules never invokes rustc.
//!
//! The descriptor is four little-endian `u32`s: two magic words the compiler
//! searches for, then the address and length of the rule data.
//!
//! Flowbits live in the engine, behind the `flow-state` import; [`BatchFlows`]
//! caches each flow's state for one batch and writes it back once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use sandgate_matcher::{Direction as MDirection, FlowStore, Matcher, PacketView, RuleSet, Scratch};

wit_bindgen::generate!({
    path: "../../wit/v1.0.0",
    world: "ips-module",
});

use exports::sandgate::pattern::inspector::Guest;
use sandgate::pattern::types::{
    Action, Batch, Direction, Hit, ModuleInfo, ModuleKind, RuleInfo, ThresholdKind, ThresholdSpec,
    TrackBy,
};

/// First magic word of the descriptor (must match the compiler's).
pub const MAGIC0: u32 = 0x5d1a_7e23;
/// Second magic word of the descriptor.
pub const MAGIC1: u32 = 0xc0de_5a9d;

/// Where the compiler tells this module its rule data lives.
#[used]
static mut DESCRIPTOR: [u32; 4] = [MAGIC0, MAGIC1, 0, 0];

/// Fixed fuel the module asks for per packet; see [`fuel_per_packet`].
const FUEL_PER_PACKET_BASE: u64 = 4_000;
/// Fuel per payload byte: the prefilter's scan plus candidate verification.
const FUEL_PER_BYTE: u64 = 400;

fn rule_data() -> &'static [u8] {
    // SAFETY: the descriptor is only written by the compiler, before the
    // module runs; volatile so the optimiser cannot fold the placeholder.
    let d = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(DESCRIPTOR)) };
    let (ptr, len) = (d[2] as usize, d[3] as usize);
    if ptr == 0 || len == 0 || !cfg!(target_arch = "wasm32") {
        return &[];
    }
    // SAFETY: the compiler placed `len` bytes at `ptr`, in pages the
    // allocator never hands out (they lie below the initial memory size).
    unsafe { core::slice::from_raw_parts(ptr as *const u8, len) }
}

fn matcher() -> Result<&'static Matcher, String> {
    static STATE: OnceLock<Result<Matcher, String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let set = RuleSet::from_bytes(rule_data()).map_err(|e| e.to_string())?;
            Matcher::new(set).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

thread_local! {
    static SCRATCH: RefCell<(Scratch, Vec<u32>, BatchFlows)> =
        RefCell::new((Scratch::default(), Vec::new(), BatchFlows::default()));
}

/// Per-batch cache over the `flow-state` import: each flow is read from the
/// engine at most once per batch and written back once, at the end.
#[derive(Default)]
struct BatchFlows {
    /// Flow id → (state, changed this batch).
    flows: HashMap<u64, (Vec<u8>, bool)>,
}

impl FlowStore for BatchFlows {
    fn load(&mut self, flow: u64, into: &mut Vec<u8>) {
        into.clear();
        let entry = self.flows.entry(flow).or_insert_with(|| {
            (
                sandgate::pattern::flow_state::get(flow).unwrap_or_default(),
                false,
            )
        });
        into.extend_from_slice(&entry.0);
    }

    fn store(&mut self, flow: u64, blob: &[u8]) {
        let entry = self.flows.entry(flow).or_default();
        entry.0.clear();
        entry.0.extend_from_slice(blob);
        entry.1 = true;
    }
}

impl BatchFlows {
    /// Write every changed flow back to the engine and forget the batch.
    fn flush(&mut self) {
        for (flow, (state, changed)) in self.flows.drain() {
            if changed {
                // A refusal (over the engine's cap) only loses the bits.
                let _ = sandgate::pattern::flow_state::set(flow, &state);
            }
        }
    }
}

fn fuel_per_packet(m: &Matcher) -> u64 {
    let rules = m.rule_set().rules.len() as u64;
    FUEL_PER_PACKET_BASE + 200 * rules.min(10_000)
}

/// Regex rules scan the payload again per candidate; budget for that.
fn fuel_per_byte(m: &Matcher) -> u64 {
    let regexes = m
        .rule_set()
        .rules
        .iter()
        .filter(|r| {
            r.ops
                .iter()
                .any(|op| matches!(op, sandgate_matcher::Op::Pcre(_)))
        })
        .count() as u64;
    FUEL_PER_BYTE + 20 * regexes.min(100_000)
}

fn action(a: sandgate_matcher::Action) -> Action {
    match a {
        sandgate_matcher::Action::Alert => Action::Alert,
        sandgate_matcher::Action::Drop => Action::Drop,
        sandgate_matcher::Action::Reject => Action::Reject,
        sandgate_matcher::Action::Pass => Action::Pass,
    }
}

fn threshold(t: &sandgate_matcher::Threshold) -> ThresholdSpec {
    use sandgate_matcher::{ThresholdKind as K, TrackBy as T};
    ThresholdSpec {
        kind: match t.kind {
            K::Limit => ThresholdKind::Limit,
            K::Threshold => ThresholdKind::Threshold,
            K::Both => ThresholdKind::Both,
            K::DetectionFilter => ThresholdKind::DetectionFilter,
        },
        track: match t.track {
            T::BySrc => TrackBy::BySrc,
            T::ByDst => TrackBy::ByDst,
            T::ByBoth => TrackBy::ByBoth,
            T::ByRule => TrackBy::ByRule,
            T::ByFlow => TrackBy::ByFlow,
        },
        count: t.count,
        seconds: t.seconds,
    }
}

fn addr(a: sandgate::pattern::types::IpAddress) -> u128 {
    (u128::from(a.hi) << 64) | u128::from(a.lo)
}

struct RulesModule;

impl Guest for RulesModule {
    fn describe() -> ModuleInfo {
        let m = match matcher() {
            Ok(m) => m,
            // A module without usable rule data declares nothing; its
            // inspect calls then report the error.
            Err(_) => {
                return ModuleInfo {
                    name: String::from("invalid"),
                    version: String::new(),
                    kind: ModuleKind::Ips,
                    rules: Vec::new(),
                    fuel_per_packet: FUEL_PER_PACKET_BASE,
                    fuel_per_byte: FUEL_PER_BYTE,
                }
            }
        };
        let set = m.rule_set();
        ModuleInfo {
            name: set.name.clone(),
            version: set.version.clone(),
            kind: ModuleKind::Ips,
            rules: set
                .rules
                .iter()
                .map(|r| RuleInfo {
                    gid: r.meta.gid,
                    sid: r.meta.sid,
                    rev: r.meta.rev,
                    action: action(r.meta.action),
                    msg: r.meta.msg.clone(),
                    classtype: r.meta.classtype.clone(),
                    priority: r.meta.priority,
                    references: r.meta.references.clone(),
                    metadata: r.meta.metadata.clone(),
                    thresholds: r.meta.thresholds.iter().map(threshold).collect(),
                })
                .collect(),
            fuel_per_packet: fuel_per_packet(m),
            fuel_per_byte: fuel_per_byte(m),
        }
    }

    fn inspect(batch: Batch) -> Result<Vec<Hit>, String> {
        let m = matcher()?;
        let rules = &m.rule_set().rules;
        SCRATCH.with(|cell| {
            let mut guard = cell.borrow_mut();
            let (scratch, found, flows) = &mut *guard;
            let mut hits = Vec::new();
            for (i, p) in batch.packets.iter().enumerate() {
                let start = p.payload_offset as usize;
                let end = start.saturating_add(p.payload_len as usize);
                let Some(payload) = batch.buffer.get(start..end) else {
                    flows.flush();
                    return Err(format!(
                        "packet {i}: payload {start}..{end} outside the batch buffer"
                    ));
                };
                let l3 = {
                    let s = p.l3_offset as usize;
                    batch
                        .buffer
                        .get(s..s.saturating_add(p.l3_len as usize))
                        .unwrap_or(&[])
                };
                let view = PacketView {
                    flow_id: p.flow_id,
                    ip_version: p.ip_version,
                    l3,
                    l4_offset: (p.l4_offset as usize).saturating_sub(p.l3_offset as usize),
                    protocol: p.protocol,
                    src: addr(p.src_addr),
                    dst: addr(p.dst_addr),
                    src_port: p.src_port,
                    dst_port: p.dst_port,
                    direction: match p.direction {
                        Direction::ToServer => MDirection::ToServer,
                        Direction::ToClient => MDirection::ToClient,
                        Direction::Unknown => MDirection::Unknown,
                    },
                    flow_flags: p.flow_flags,
                    payload,
                };
                found.clear();
                m.matches_with(&view, scratch, flows, found);
                for &r in found.iter() {
                    let act = rules
                        .get(r as usize)
                        .map_or(Action::Alert, |rule| action(rule.meta.action));
                    hits.push(Hit {
                        packet: i as u32,
                        rule: r,
                        action: act,
                    });
                }
            }
            flows.flush();
            Ok(hits)
        })
    }
}

export!(RulesModule);
