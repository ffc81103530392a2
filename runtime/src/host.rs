//! What the engine gives a module: the `log` and `flow-state` imports, and
//! the resource limiter that enforces the memory and table caps.
//!
//! One [`HostState`] lives in each instance's `Store`; it outlives the
//! instance when a trap forces a restart, so flow state survives.

use std::collections::{HashMap, VecDeque};

use wasmtime::ResourceLimiter;

use crate::config::Limits;
use crate::wit::sandgate::pattern::{flow_state, log, types};

/// One line a module logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    /// The module's level for it.
    pub level: log::Level,
    /// The text, cut to `limits.log_line_max_bytes`.
    pub message: String,
}

/// Per-instance host data: flow state, the log ring, the limiter.
pub(crate) struct HostState {
    flows: HashMap<u64, Vec<u8>>,
    flow_max_bytes: usize,
    flow_max_flows: usize,
    logs: VecDeque<LogLine>,
    logs_kept: usize,
    logs_per_call: u32,
    log_line_max: usize,
    logs_this_call: u32,
    logs_dropped: u64,
    pub(crate) limiter: CapLimiter,
}

impl HostState {
    pub(crate) fn new(limits: &Limits, memory_cap: usize) -> Self {
        let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        Self {
            flows: HashMap::new(),
            flow_max_bytes: to_usize(limits.flow_state_max_bytes),
            flow_max_flows: to_usize(limits.flow_state_max_flows),
            logs: VecDeque::new(),
            logs_kept: to_usize(limits.log_lines_kept),
            logs_per_call: limits.log_lines_per_call,
            log_line_max: to_usize(limits.log_line_max_bytes),
            logs_this_call: 0,
            logs_dropped: 0,
            limiter: CapLimiter {
                memory_cap,
                table_cap: to_usize(limits.table_max_elements),
                hit: None,
            },
        }
    }

    /// An empty state used only while the real one is moved between stores.
    pub(crate) fn placeholder() -> Self {
        Self::new(&Limits::default(), 0)
    }

    /// Resets the per-call counters before a call into the module.
    pub(crate) fn begin_call(&mut self) {
        self.logs_this_call = 0;
        self.limiter.hit = None;
    }

    pub(crate) fn forget_flow(&mut self, flow_id: u64) -> bool {
        self.flows.remove(&flow_id).is_some()
    }

    pub(crate) fn flow_count(&self) -> usize {
        self.flows.len()
    }

    pub(crate) fn take_logs(&mut self) -> Vec<LogLine> {
        self.logs.drain(..).collect()
    }

    pub(crate) fn logs_dropped(&self) -> u64 {
        self.logs_dropped
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, mut message: String) {
        if self.logs_this_call >= self.logs_per_call || self.logs_kept == 0 {
            self.logs_dropped += 1;
            return;
        }
        self.logs_this_call += 1;
        if message.len() > self.log_line_max {
            let mut cut = self.log_line_max;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        if self.logs.len() >= self.logs_kept {
            self.logs.pop_front();
            self.logs_dropped += 1;
        }
        self.logs.push_back(LogLine { level, message });
    }
}

impl flow_state::Host for HostState {
    fn get(&mut self, flow_id: u64) -> Option<Vec<u8>> {
        self.flows.get(&flow_id).cloned()
    }

    /// Refuses (false) flow 0 (no flow), state over the per-flow cap, and a
    /// new flow when the table is full; an empty state clears the flow.
    fn set(&mut self, flow_id: u64, state: Vec<u8>) -> bool {
        if flow_id == 0 || state.len() > self.flow_max_bytes {
            return false;
        }
        if state.is_empty() {
            self.flows.remove(&flow_id);
            return true;
        }
        if !self.flows.contains_key(&flow_id) && self.flows.len() >= self.flow_max_flows {
            return false;
        }
        self.flows.insert(flow_id, state);
        true
    }
}

impl types::Host for HostState {}

/// Enforces `memory_max_bytes` and `table_max_elements`, and remembers that
/// it did so the call's fault is reported as a memory limit, not a bare trap.
pub(crate) struct CapLimiter {
    memory_cap: usize,
    table_cap: usize,
    /// Set when a growth was refused during the current call.
    pub(crate) hit: Option<String>,
}

/// Per-store counts; generous for a wit-component component (main module,
/// shims, fixups), tight enough to stop a component that instantiates
/// hundreds of inner instances.
const MAX_INSTANCES_PER_STORE: usize = 32;
const MAX_MEMORIES_PER_STORE: usize = 4;
const MAX_TABLES_PER_STORE: usize = 16;

impl ResourceLimiter for CapLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            let msg = format!(
                "linear memory growth from {current} to {desired} bytes refused: cap is {} bytes",
                self.memory_cap
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::format_err!("{msg}"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_cap {
            let msg = format!(
                "table growth from {current} to {desired} elements refused: cap is {}",
                self.table_cap
            );
            self.hit = Some(msg.clone());
            return Err(wasmtime::format_err!("{msg}"));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES_PER_STORE
    }

    fn tables(&self) -> usize {
        MAX_TABLES_PER_STORE
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES_PER_STORE
    }
}
