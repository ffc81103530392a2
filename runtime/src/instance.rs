//! [`ModuleInstance`]: one live instance of a module, the per-call fuel and
//! memory caps, fault classification and restart after a trap.

use std::mem;

use wasmtime::Store;

use crate::engine::classify;
use crate::error::{Fault, FaultKind};
use crate::host::{HostState, LogLine};
use crate::module::{LoadedModule, Pre};
use crate::wit::{Batch, Hit, IpsModule};

/// Longest module error text kept in a [`Fault`].
pub(crate) const MAX_MODULE_ERROR: usize = 1024;

const NOT_IPS: &str =
    "is an AV module (exports `scanner`, not `inspector`): scan with a ScanInstance";

/// One instance of a module, owned by one worker. A call that traps poisons
/// the instance; the next call starts a fresh one from the pre-instantiated
/// component, keeping the flow state.
pub struct ModuleInstance {
    module: LoadedModule,
    slot: Slot,
    last_fuel_used: u64,
}

enum Slot {
    Live {
        store: Store<HostState>,
        bindings: IpsModule,
    },
    /// No instance (poisoned); the host state waits for the next one.
    Parked(HostState),
}

impl std::fmt::Debug for ModuleInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleInstance")
            .field("module", &self.module.name())
            .field("live", &matches!(self.slot, Slot::Live { .. }))
            .finish_non_exhaustive()
    }
}

impl ModuleInstance {
    pub(crate) fn new(module: LoadedModule) -> Result<Self, Fault> {
        let state = module.inner.engine.new_host_state();
        let mut this = ModuleInstance {
            module,
            slot: Slot::Parked(state),
            last_fuel_used: 0,
        };
        this.revive()?;
        Ok(this)
    }

    /// The module this is an instance of.
    pub fn module(&self) -> &LoadedModule {
        &self.module
    }

    /// Inspects a batch and returns its hits, each checked to name a packet
    /// of the batch and a rule the module declared.
    ///
    /// Fuel: [`FuelBudget::for_batch`](crate::FuelBudget::for_batch). The
    /// batch is copied into guest memory and the hits are lifted into a new
    /// `Vec` (one allocation per call, not per packet).
    pub fn inspect(&mut self, batch: &Batch) -> Result<Vec<Hit>, Fault> {
        if matches!(self.slot, Slot::Parked(_)) {
            self.revive()?;
            self.module.inner.counters.reinstantiated();
        }
        let budget = self
            .module
            .inner
            .fuel
            .for_batch(batch.packets.len(), batch.buffer.len());
        let Slot::Live { store, bindings } = &mut self.slot else {
            return Err(self.fault(FaultKind::Instantiate, "no live instance".into()));
        };
        let armed = self.module.inner.engine.arm(store, budget);
        store.data_mut().begin_call();
        let result = bindings
            .sandgate_pattern_inspector()
            .call_inspect(&mut *store, batch);
        let used = armed.used(store);
        self.last_fuel_used = used;
        self.module.inner.counters.call(used);
        match result {
            Ok(Ok(hits)) => {
                self.check_hits(batch, &hits)?;
                Ok(hits)
            }
            Ok(Err(mut message)) => {
                truncate(&mut message, MAX_MODULE_ERROR);
                Err(self.fault(FaultKind::ModuleError, message))
            }
            Err(e) => {
                let (kind, message) = classify(&e, store.data());
                self.poison();
                Err(self.fault(kind, message))
            }
        }
    }

    /// Drops the state the module stored for a flow; the host calls it when
    /// the flow expires. Returns whether there was any.
    pub fn forget_flow(&mut self, flow_id: u64) -> bool {
        self.state_mut().forget_flow(flow_id)
    }

    /// Flows with state in this instance.
    pub fn flow_count(&self) -> usize {
        self.state().flow_count()
    }

    /// Takes the log lines the module emitted since the last call.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        self.state_mut().take_logs()
    }

    /// Log lines dropped so far (over the per-call rate or the ring size).
    pub fn logs_dropped(&self) -> u64 {
        self.state().logs_dropped()
    }

    /// Fuel the last `inspect` call consumed: the measured cost the design
    /// asks modules to state.
    pub fn last_fuel_used(&self) -> u64 {
        self.last_fuel_used
    }

    /// Whether the last call poisoned the instance (the next call restarts it).
    pub fn is_poisoned(&self) -> bool {
        matches!(self.slot, Slot::Parked(_))
    }

    fn state(&self) -> &HostState {
        match &self.slot {
            Slot::Live { store, .. } => store.data(),
            Slot::Parked(state) => state,
        }
    }

    fn state_mut(&mut self) -> &mut HostState {
        match &mut self.slot {
            Slot::Live { store, .. } => store.data_mut(),
            Slot::Parked(state) => state,
        }
    }

    /// Discards the store (the instance may be mid-way through anything) and
    /// keeps its host state for the next instance.
    fn poison(&mut self) {
        let slot = mem::replace(&mut self.slot, Slot::Parked(HostState::placeholder()));
        self.slot = match slot {
            Slot::Live { store, .. } => Slot::Parked(store.into_data()),
            parked => parked,
        };
    }

    /// Instantiates from the pre-instantiated component with the parked state.
    fn revive(&mut self) -> Result<(), Fault> {
        let slot = mem::replace(&mut self.slot, Slot::Parked(HostState::placeholder()));
        let state = match slot {
            Slot::Parked(state) => state,
            live @ Slot::Live { .. } => {
                self.slot = live;
                return Ok(());
            }
        };
        let state = match self.instantiate_warm(state) {
            Ok(live) => {
                self.slot = live;
                return Ok(());
            }
            Err(state) => state,
        };
        // The warm-up trapped: start a cold instance and let the real call
        // meet whatever the module does (and be counted then).
        let Pre::Ips(pre) = &self.module.inner.pre else {
            self.slot = Slot::Parked(state);
            return Err(self.fault(FaultKind::Instantiate, NOT_IPS.into()));
        };
        let mut store = self.module.inner.engine.new_store(state);
        match pre.instantiate(&mut store) {
            Ok(bindings) => {
                self.slot = Slot::Live { store, bindings };
                Ok(())
            }
            Err(e) => {
                let (_, message) = classify(&e, store.data());
                self.slot = Slot::Parked(store.into_data());
                Err(self.fault(FaultKind::Instantiate, message))
            }
        }
    }

    /// Instantiates and runs the warm-up call (an empty batch under
    /// `fuel_warmup`), so lazy initialisation is paid once per instance.
    /// Gives the host state back when either step fails.
    // The state is handed back by value on the rare failure path, once per
    // new instance; boxing it would cost an allocation on every restart.
    #[allow(clippy::result_large_err)]
    fn instantiate_warm(&self, state: HostState) -> Result<Slot, HostState> {
        let Pre::Ips(pre) = &self.module.inner.pre else {
            return Err(state);
        };
        let mut store = self.module.inner.engine.new_store(state);
        let Ok(bindings) = pre.instantiate(&mut store) else {
            return Err(store.into_data());
        };
        let engine = &self.module.inner.engine;
        engine.arm(&mut store, engine.config().limits.fuel_warmup);
        store.data_mut().begin_call();
        let empty = Batch {
            buffer: Vec::new(),
            packets: Vec::new(),
        };
        match bindings
            .sandgate_pattern_inspector()
            .call_inspect(&mut store, &empty)
        {
            Ok(_) => Ok(Slot::Live { store, bindings }),
            Err(_) => Err(store.into_data()),
        }
    }

    fn check_hits(&self, batch: &Batch, hits: &[Hit]) -> Result<(), Fault> {
        let packets = batch.packets.len();
        let rules = self.module.info().rules.len();
        // More hits than distinct (packet, rule) pairs can only be repeats:
        // refused before the host spends time on them.
        let distinct = packets.saturating_mul(rules);
        if hits.len() > distinct {
            return Err(self.fault(
                FaultKind::BadOutput,
                format!(
                    "{} hits for {packets} packets and {rules} rules (at most {distinct} distinct)",
                    hits.len()
                ),
            ));
        }
        for (i, hit) in hits.iter().enumerate() {
            if usize::try_from(hit.packet).map_or(true, |p| p >= packets) {
                return Err(self.fault(
                    FaultKind::BadOutput,
                    format!(
                        "hit {i} names packet {}, the batch has {packets}",
                        hit.packet
                    ),
                ));
            }
            if usize::try_from(hit.rule).map_or(true, |r| r >= rules) {
                return Err(self.fault(
                    FaultKind::BadOutput,
                    format!(
                        "hit {i} names rule {}, the module declared {rules}",
                        hit.rule
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Counts a fault and builds it.
    fn fault(&self, kind: FaultKind, message: String) -> Fault {
        self.module.fault(kind, message)
    }
}

pub(crate) fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}
