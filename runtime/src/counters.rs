//! [`FaultCounters`]: per-module call and fault counts, shared by every
//! instance of the module and cheap to read from another thread.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::FaultKind;

/// Live counters of one loaded module (all its instances). Relaxed atomics:
/// each count is exact, a [`snapshot`](Self::snapshot) is not a single instant.
#[derive(Debug, Default)]
pub struct FaultCounters {
    calls: AtomicU64,
    trap: AtomicU64,
    fuel_exhausted: AtomicU64,
    memory_limit: AtomicU64,
    stack_overflow: AtomicU64,
    module_error: AtomicU64,
    bad_output: AtomicU64,
    instantiate: AtomicU64,
    reinstantiations: AtomicU64,
    fuel_used: AtomicU64,
}

/// A copy of [`FaultCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// `inspect` calls, faulted or not.
    pub calls: u64,
    /// [`FaultKind::Trap`] faults.
    pub trap: u64,
    /// [`FaultKind::FuelExhausted`] faults.
    pub fuel_exhausted: u64,
    /// [`FaultKind::MemoryLimit`] faults.
    pub memory_limit: u64,
    /// [`FaultKind::StackOverflow`] faults.
    pub stack_overflow: u64,
    /// [`FaultKind::ModuleError`] faults.
    pub module_error: u64,
    /// [`FaultKind::BadOutput`] faults.
    pub bad_output: u64,
    /// [`FaultKind::Instantiate`] faults.
    pub instantiate: u64,
    /// Fresh instances made to replace one poisoned by a trap.
    pub reinstantiations: u64,
    /// Fuel consumed by all `inspect` calls.
    pub fuel_used: u64,
}

impl FaultCounts {
    /// All faults of every kind.
    pub fn faults(&self) -> u64 {
        self.trap
            + self.fuel_exhausted
            + self.memory_limit
            + self.stack_overflow
            + self.module_error
            + self.bad_output
            + self.instantiate
    }

    /// Faults of one kind.
    pub fn of(&self, kind: FaultKind) -> u64 {
        match kind {
            FaultKind::Trap => self.trap,
            FaultKind::FuelExhausted => self.fuel_exhausted,
            FaultKind::MemoryLimit => self.memory_limit,
            FaultKind::StackOverflow => self.stack_overflow,
            FaultKind::ModuleError => self.module_error,
            FaultKind::BadOutput => self.bad_output,
            FaultKind::Instantiate => self.instantiate,
        }
    }
}

impl FaultCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> FaultCounts {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultCounts {
            calls: r(&self.calls),
            trap: r(&self.trap),
            fuel_exhausted: r(&self.fuel_exhausted),
            memory_limit: r(&self.memory_limit),
            stack_overflow: r(&self.stack_overflow),
            module_error: r(&self.module_error),
            bad_output: r(&self.bad_output),
            instantiate: r(&self.instantiate),
            reinstantiations: r(&self.reinstantiations),
            fuel_used: r(&self.fuel_used),
        }
    }

    pub(crate) fn call(&self, fuel_used: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.fuel_used.fetch_add(fuel_used, Ordering::Relaxed);
    }

    pub(crate) fn fault(&self, kind: FaultKind) {
        let counter = match kind {
            FaultKind::Trap => &self.trap,
            FaultKind::FuelExhausted => &self.fuel_exhausted,
            FaultKind::MemoryLimit => &self.memory_limit,
            FaultKind::StackOverflow => &self.stack_overflow,
            FaultKind::ModuleError => &self.module_error,
            FaultKind::BadOutput => &self.bad_output,
            FaultKind::Instantiate => &self.instantiate,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reinstantiated(&self) {
        self.reinstantiations.fetch_add(1, Ordering::Relaxed);
    }
}
