//! [`EngineConfig`]: every knob of the runtime, with documented defaults.
//!
//! Loaded by the host from YAML (serde), validated once by
//! [`Engine::new`](crate::Engine::new). Every field has a default, so an empty
//! document is a valid configuration.

use serde::{Deserialize, Serialize};

use crate::error::EngineError;
use crate::version::InterfaceVersion;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
/// Size of a wasm linear-memory page.
pub(crate) const WASM_PAGE: u64 = 64 * KIB;

/// The interface versions this build can host: it links every
/// `sandgate:pattern` host function of 1.2.0 (which are those of 1.0.0) and
/// calls the 1.0.0 `inspector`, the 1.1.0 `scanner` and the 1.2.0
/// `flat-inspector`. A config may claim
/// later 1.x minors (the linker still refuses a function this build lacks),
/// never another major.
pub const BUILT_IN_MAJOR: u32 = 1;

/// The versions this build implements, the default of
/// [`EngineConfig::interfaces`].
pub const BUILT_IN_VERSIONS: [InterfaceVersion; 3] = [
    InterfaceVersion::new(1, 0, 0),
    InterfaceVersion::new(1, 1, 0),
    InterfaceVersion::new(1, 2, 0),
];

/// Everything the runtime needs to know, in one place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Interface versions this engine implements; a module is accepted when
    /// every `sandgate:pattern` import it has is satisfied by one of them.
    ///
    /// Default `["1.0.0", "1.1.0", "1.2.0"]` ([`BUILT_IN_VERSIONS`]). Listing
    /// only `1.0.0` behaves as a 1.0-only engine release: AV modules (the
    /// 1.1.0 `scanner`) and flat modules (the 1.2.0 `flat-inspector`) are
    /// refused; `["1.0.0", "1.1.0"]` refuses flat modules only. Listing a newer minor than the built-in
    /// functions makes the load check defer to the linker for the missing
    /// functions.
    pub interfaces: Vec<InterfaceVersion>,
    /// Resource caps per module and per call.
    pub limits: Limits,
    /// The instance pool; falls back to on-demand allocation if it cannot be
    /// reserved.
    pub pool: PoolConfig,
    /// What the host does with a packet when a module faults and its bundle
    /// entry names no policy. Default [`FailPolicy::FailOpen`]. The runtime
    /// only carries it; the host maps a [`Fault`](crate::Fault) to a verdict.
    pub fail_policy: FailPolicy,
    /// When a module that keeps faulting is taken out of the data plane.
    pub quarantine: QuarantineConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            interfaces: BUILT_IN_VERSIONS.to_vec(),
            limits: Limits::default(),
            pool: PoolConfig::default(),
            fail_policy: FailPolicy::default(),
            quarantine: QuarantineConfig::default(),
        }
    }
}

/// Quarantine: a module with more than `fault_threshold` faults among its
/// last `window_calls` calls is no longer called; its failure policy decides
/// its verdict from then on, or its last good version (when the host has
/// one) takes its place. The host applies it (`sandgate_host::inspect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuarantineConfig {
    /// Faults tolerated inside the window; one more quarantines the module.
    /// Default 10: an occasional fault (one odd packet) costs a batch, a
    /// module faulting on one call in ten is taken out.
    pub fault_threshold: u32,
    /// Length of the sliding window, in calls (batches) of that module.
    /// Default 100 (6,400 packets at the default batch size).
    pub window_calls: u32,
}

impl Default for QuarantineConfig {
    fn default() -> Self {
        Self {
            fault_threshold: 10,
            window_calls: 100,
        }
    }
}

/// What a module's fault means for the packet it was inspecting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailPolicy {
    /// The packet passes uninspected by that module (availability first: a
    /// broken content update must not cut traffic, see DESIGN.md).
    #[default]
    FailOpen,
    /// The packet is dropped (security first).
    FailClosed,
}

/// Resource caps. Fuel is wasmtime's instruction-count budget: roughly one
/// unit per wasm operator, about 1–3 ns each on this class of machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest component accepted, in bytes. Default 64 MiB: a 5,000-literal
    /// automaton module is ~1 MiB; the cap bounds parse and compile time.
    pub max_module_bytes: u64,
    /// Linear-memory cap per instance, in bytes (rounded down to 64 KiB
    /// pages). Default 128 MiB: the 1.2.0 variant of the full ET Open
    /// ruleset (9,400 rules, HTTP/DNS/TLS ones included) needs ~66 MiB for
    /// its rule data, decoded rules and automata. Growing past it traps the call
    /// ([`FaultKind::MemoryLimit`](crate::FaultKind::MemoryLimit)). Each pool
    /// slot reserves this much virtual address space.
    pub memory_max_bytes: u64,
    /// Table-element cap per table. Default 10,000 (8 bytes each on the host).
    pub table_max_elements: u32,
    /// Wasm stack cap, in bytes. Default 512 KiB (wasmtime's default):
    /// deeper recursion traps with
    /// [`FaultKind::StackOverflow`](crate::FaultKind::StackOverflow).
    pub max_wasm_stack: u64,
    /// Fuel every `inspect` call gets before per-packet and per-byte fuel.
    /// Default 100,000 (covers the argument copy and the module's setup).
    pub fuel_per_call_base: u64,
    /// Fuel per packet in the batch. Default 10,000. A module's own
    /// `fuel-per-packet` estimate replaces it when larger, up to
    /// `fuel_per_packet_max`.
    pub fuel_per_packet: u64,
    /// Fuel per byte of the batch buffer. Default 50 (a DFA scan costs ~10
    /// per byte). A module's `fuel-per-byte` replaces it when larger, up to
    /// `fuel_per_byte_max`.
    pub fuel_per_byte: u64,
    /// Highest per-packet rate a module may ask for. Default 1,000,000.
    pub fuel_per_packet_max: u64,
    /// Highest per-byte rate a module may ask for. Default 20,000 (a rule set
    /// with many regexes rescans a payload per candidate); `fuel_per_call_max`
    /// still bounds any one call.
    pub fuel_per_byte_max: u64,
    /// Hard cap on one `inspect` call. Default 1,000,000,000 (about a second
    /// of wasm): the worst case a looping module costs one worker.
    pub fuel_per_call_max: u64,
    /// Fuel for instantiation (start functions). Default 10,000,000.
    pub fuel_instantiate: u64,
    /// Fuel for the one `describe` call at load time. Default
    /// 5,000,000,000, the same as the warm-up: a rules module decodes its
    /// rule data and builds its automata in its first call, whichever it is
    /// (the 1.2.0 variant of the full ET ruleset needs more than 10^9).
    pub fuel_describe: u64,
    /// Fuel for the warm-up call every new instance gets: an `inspect` of an
    /// empty batch, so lazy initialisation (decoding rule data, building
    /// automata) is paid once per instance instead of by the first packets.
    /// Default 5,000,000,000 (a few seconds of wasm at worst).
    pub fuel_warmup: u64,
    /// Scan-time limit of one AV scan (every `feed` plus `finish` of one
    /// file or stream payload), in fuel. Default 120,000,000,000: about two
    /// minutes of wasm at ~1 ns per unit, clamscan's default
    /// `--max-scantime`. Exceeding it ends the scan with the verdict
    /// [`ScanLimit::ScanTime`](crate::ScanLimit::ScanTime), not a fault.
    /// [`ScanOptions::max_scan_fuel`](crate::ScanOptions) overrides it per scan.
    pub fuel_per_scan: u64,
    /// Per-flow state cap, in bytes; `flow-state.set` returns false above it.
    /// Default 256.
    pub flow_state_max_bytes: u32,
    /// Flows with state per instance; `set` for a new flow returns false when
    /// full (no eviction: the host expires flows with `forget_flow`).
    /// Default 16,384 (at most 4 MiB of state per instance with the default
    /// per-flow cap).
    pub flow_state_max_flows: u32,
    /// Log lines an instance keeps until the host takes them. Default 64;
    /// older lines are dropped and counted.
    pub log_lines_kept: u32,
    /// Log lines a module may emit per call; the rest are dropped and
    /// counted. Default 8.
    pub log_lines_per_call: u32,
    /// Longest log line kept, in bytes; longer lines are cut. Default 512.
    pub log_line_max_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_module_bytes: 64 * MIB,
            memory_max_bytes: 128 * MIB,
            table_max_elements: 10_000,
            max_wasm_stack: 512 * KIB,
            fuel_per_call_base: 100_000,
            fuel_per_packet: 10_000,
            fuel_per_byte: 50,
            fuel_per_packet_max: 1_000_000,
            fuel_per_byte_max: 20_000,
            fuel_per_call_max: 1_000_000_000,
            fuel_instantiate: 10_000_000,
            fuel_describe: 5_000_000_000,
            fuel_warmup: 5_000_000_000,
            fuel_per_scan: 120_000_000_000,
            flow_state_max_bytes: 256,
            flow_state_max_flows: 16_384,
            log_lines_kept: 64,
            log_lines_per_call: 8,
            log_line_max_bytes: 512,
        }
    }
}

/// The pooling instance allocator: instantiation in microseconds instead of
/// an mmap per instance, at the cost of reserving address space up front.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Use the pool. Default true. When the pool cannot be reserved (e.g. a
    /// `ulimit -v`), the engine falls back to on-demand allocation and says
    /// so in [`Engine::allocator`](crate::Engine::allocator).
    pub enabled: bool,
    /// Live module instances at once (workers × modules, plus one per module
    /// being loaded). Default 64. Reserves about
    /// `instances × (memory_max_bytes + 64 KiB)` of virtual address space
    /// (4 GiB with the defaults), none of it resident until used.
    pub max_instances: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_instances: 64,
        }
    }
}

impl EngineConfig {
    /// Checks values that would make the engine unusable; names the field.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |field: &'static str, reason: String| Err(EngineError::Config { field, reason });
        if self.interfaces.is_empty() {
            return bad("interfaces", "must list at least one version".into());
        }
        if let Some(v) = self.interfaces.iter().find(|v| v.major != BUILT_IN_MAJOR) {
            return bad(
                "interfaces",
                format!(
                    "{v} is not hostable: this build implements major version {BUILT_IN_MAJOR}"
                ),
            );
        }
        let l = &self.limits;
        if l.memory_max_bytes < WASM_PAGE {
            return bad("limits.memory_max_bytes", "must be at least 64 KiB".into());
        }
        if l.memory_max_bytes > 4 * 1024 * MIB {
            return bad(
                "limits.memory_max_bytes",
                "must be at most 4 GiB (wasm32)".into(),
            );
        }
        if l.max_wasm_stack < 16 * KIB || l.max_wasm_stack > 64 * MIB {
            return bad(
                "limits.max_wasm_stack",
                "must be between 16 KiB and 64 MiB".into(),
            );
        }
        if l.max_module_bytes == 0 {
            return bad("limits.max_module_bytes", "must be positive".into());
        }
        if l.fuel_per_call_max == 0
            || l.fuel_describe == 0
            || l.fuel_instantiate == 0
            || l.fuel_warmup == 0
            || l.fuel_per_scan == 0
        {
            return bad("limits.fuel_*", "fuel budgets must be positive".into());
        }
        if l.fuel_per_packet > l.fuel_per_packet_max || l.fuel_per_byte > l.fuel_per_byte_max {
            return bad(
                "limits.fuel_per_*",
                "a default rate is above its maximum".into(),
            );
        }
        if self.quarantine.window_calls == 0 {
            return bad("quarantine.window_calls", "must be positive".into());
        }
        if self.pool.enabled && self.pool.max_instances == 0 {
            return bad("pool.max_instances", "must be positive".into());
        }
        Ok(())
    }

    /// `memory_max_bytes` rounded down to whole wasm pages.
    pub(crate) fn memory_cap(&self) -> usize {
        let bytes = self.limits.memory_max_bytes / WASM_PAGE * WASM_PAGE;
        usize::try_from(bytes).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_is_the_default() {
        let c: EngineConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, EngineConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn reads_versions_and_policy_as_strings() {
        let c: EngineConfig = serde_json::from_str(
            r#"{"interfaces": ["1.0.0", "1.1.0"], "fail_policy": "fail-closed",
                "limits": {"fuel_per_byte": 20}}"#,
        )
        .unwrap();
        assert_eq!(c.interfaces[1], InterfaceVersion::new(1, 1, 0));
        assert_eq!(c.fail_policy, FailPolicy::FailClosed);
        assert_eq!(c.limits.fuel_per_byte, 20);
        assert_eq!(c.limits.fuel_per_packet, Limits::default().fuel_per_packet);
    }

    #[test]
    fn refuses_a_major_this_build_cannot_host() {
        let c = EngineConfig {
            interfaces: vec![InterfaceVersion::new(2, 0, 0)],
            ..Default::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("interfaces") && err.contains("2.0.0"), "{err}");
    }
}
