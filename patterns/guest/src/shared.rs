//! What the 1.0.0 and the 1.2.0 rules guests share: the rule-data
//! descriptor the compiler patches, the matcher built from it once per
//! instance, the per-batch flow-state cache, and `describe`'s answer.
//!
//! Included by both guest crates (`#[path]`), each of which generates its
//! own bindings under `crate::sandgate::pattern`.

use std::collections::HashMap;
use std::sync::OnceLock;

use sandgate_matcher::{FlowStore, Matcher, RuleSet};

use crate::sandgate;
use crate::sandgate::pattern::types::{
    Action, ModuleInfo, ModuleKind, RuleInfo, ThresholdKind, ThresholdSpec, TrackBy,
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

pub(crate) fn rule_data() -> &'static [u8] {
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

pub(crate) fn matcher() -> Result<&'static Matcher, String> {
    static STATE: OnceLock<Result<Matcher, String>> = OnceLock::new();
    STATE
        .get_or_init(|| {
            let set = RuleSet::from_bytes(rule_data()).map_err(|e| e.to_string())?;
            Ok(Matcher::new(set))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Per-batch cache over the `flow-state` import: each flow is read from the
/// engine at most once per batch and written back once, at the end.
#[derive(Default)]
pub(crate) struct BatchFlows {
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
    pub(crate) fn flush(&mut self) {
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

pub(crate) fn action(a: sandgate_matcher::Action) -> Action {
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

/// `describe`'s answer: the rule set's name, version and rules.
pub(crate) fn describe() -> ModuleInfo {
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
