//! [`ModuleInstance`]: one live instance of a module, the per-call fuel and
//! memory caps, fault classification and restart after a trap.

use std::mem;

use wasmtime::Store;

use crate::app::{self, AppData};
use crate::engine::classify;
use crate::error::{Fault, FaultKind};
use crate::host::{HostState, LogLine};
use crate::module::{LoadedModule, Pre};
use crate::wit::flat::FlatIpsModule;
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
    scratch: Scratch,
}

/// Vectors reused across calls, so converting a batch allocates nothing once
/// warmed up.
struct Scratch {
    /// Flat entry words (1.2.0 modules).
    entries: Vec<u32>,
    /// Flat buffer descriptors (1.2.0 modules).
    buffers: Vec<u32>,
    /// The batch without transaction entries (1.0.0 modules).
    filtered: Batch,
    /// Original index of each packet of `filtered`.
    map: Vec<u32>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            entries: Vec::new(),
            buffers: Vec::new(),
            filtered: Batch {
                buffer: Vec::new(),
                packets: Vec::new(),
            },
            map: Vec::new(),
        }
    }
}

/// The instantiated exports, by the world the module implements.
enum Bindings {
    Ips(IpsModule),
    Flat(FlatIpsModule),
}

enum Slot {
    Live {
        store: Store<HostState>,
        bindings: Bindings,
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
            scratch: Scratch::default(),
        };
        this.revive()?;
        Ok(this)
    }

    /// The module this is an instance of.
    pub fn module(&self) -> &LoadedModule {
        &self.module
    }

    /// Whether this module reads application-layer buffers (it exports
    /// `flat-inspector@1.2.x`); see [`LoadedModule::wants_app`].
    pub fn wants_app(&self) -> bool {
        self.module.wants_app()
    }

    /// Inspects a batch and returns its hits, each checked to name a packet
    /// of the batch and a rule the module declared. Same as
    /// [`inspect_app`](Self::inspect_app) with no application-layer data.
    ///
    /// Fuel: [`FuelBudget::for_batch`](crate::FuelBudget::for_batch). The
    /// batch is copied into guest memory and the hits are lifted into a new
    /// `Vec` (one allocation per call, not per packet).
    pub fn inspect(&mut self, batch: &Batch) -> Result<Vec<Hit>, Fault> {
        self.inspect_app(batch, &AppData::default())
    }

    /// As [`inspect`](Self::inspect), plus application-layer transaction
    /// entries (packets flagged [`FLOW_APP_TX`](crate::FLOW_APP_TX)) and
    /// their buffers. A 1.0.0 module never sees the transaction entries: the
    /// runtime leaves them out and maps its hit indexes back to `batch`. A
    /// 1.2.0 (flat) module gets everything through `flat-inspector`.
    pub fn inspect_app(&mut self, batch: &Batch, app: &AppData) -> Result<Vec<Hit>, Fault> {
        if matches!(self.slot, Slot::Parked(_)) {
            self.revive()?;
            self.module.inner.counters.reinstantiated();
        }
        let mut scratch = mem::take(&mut self.scratch);
        let result = if self.module.wants_app() {
            app::flatten(batch, app, &mut scratch.entries, &mut scratch.buffers);
            self.call(
                Call::Flat {
                    data: &batch.buffer,
                    entries: &scratch.entries,
                    buffers: &scratch.buffers,
                },
                batch.packets.len(),
            )
        } else if app::has_app_entries(batch) {
            app::without_app_entries(batch, &mut scratch.filtered, &mut scratch.map);
            let map = &scratch.map;
            self.call(Call::Std(&scratch.filtered), map.len())
                .map(|mut hits| {
                    for hit in &mut hits {
                        // check_hits proved the index is in range.
                        if let Some(&original) = map.get(hit.packet as usize) {
                            hit.packet = original;
                        }
                    }
                    hits
                })
        } else {
            self.call(Call::Std(batch), batch.packets.len())
        };
        self.scratch = scratch;
        result
    }

    /// One call into the live instance under the batch's fuel budget.
    fn call(&mut self, call: Call<'_>, packets: usize) -> Result<Vec<Hit>, Fault> {
        let bytes = match &call {
            Call::Std(b) => b.buffer.len(),
            Call::Flat { data, .. } => data.len(),
        };
        let budget = self.module.inner.fuel.for_batch(packets, bytes);
        let Slot::Live { store, bindings } = &mut self.slot else {
            return Err(self.fault(FaultKind::Instantiate, "no live instance".into()));
        };
        let _ = store.set_fuel(budget);
        store.data_mut().begin_call();
        let result = match (bindings, call) {
            (Bindings::Ips(b), Call::Std(batch)) => b
                .sandgate_pattern_inspector()
                .call_inspect(&mut *store, batch),
            (
                Bindings::Flat(b),
                Call::Flat {
                    data,
                    entries,
                    buffers,
                },
            ) => b.sandgate_pattern_flat_inspector().call_inspect(
                &mut *store,
                data,
                entries,
                buffers,
            ),
            _ => {
                return Err(self.fault(
                    FaultKind::Instantiate,
                    "batch form does not match the module's interface".into(),
                ))
            }
        };
        let used = budget.saturating_sub(store.get_fuel().unwrap_or(0));
        self.last_fuel_used = used;
        self.module.inner.counters.call(used);
        match result {
            Ok(Ok(hits)) => {
                self.check_hits(packets, &hits)?;
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
        let mut store = self.module.inner.engine.new_store(state);
        let instantiated = match &self.module.inner.pre {
            Pre::Ips(pre) => pre.instantiate(&mut store).map(Bindings::Ips),
            Pre::Flat(pre) => pre.instantiate(&mut store).map(Bindings::Flat),
            Pre::Av(_) => {
                self.slot = Slot::Parked(store.into_data());
                return Err(self.fault(FaultKind::Instantiate, NOT_IPS.into()));
            }
        };
        match instantiated {
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
        let mut store = self.module.inner.engine.new_store(state);
        let instantiated = match &self.module.inner.pre {
            Pre::Ips(pre) => pre.instantiate(&mut store).map(Bindings::Ips),
            Pre::Flat(pre) => pre.instantiate(&mut store).map(Bindings::Flat),
            Pre::Av(_) => return Err(store.into_data()),
        };
        let Ok(bindings) = instantiated else {
            return Err(store.into_data());
        };
        let _ = store.set_fuel(self.module.inner.engine.config().limits.fuel_warmup);
        store.data_mut().begin_call();
        let warmed = match &bindings {
            Bindings::Ips(b) => b
                .sandgate_pattern_inspector()
                .call_inspect(
                    &mut store,
                    &Batch {
                        buffer: Vec::new(),
                        packets: Vec::new(),
                    },
                )
                .is_ok(),
            Bindings::Flat(b) => b
                .sandgate_pattern_flat_inspector()
                .call_inspect(&mut store, &[], &[], &[])
                .is_ok(),
        };
        if warmed {
            Ok(Slot::Live { store, bindings })
        } else {
            Err(store.into_data())
        }
    }

    fn check_hits(&self, packets: usize, hits: &[Hit]) -> Result<(), Fault> {
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

/// The batch in the form the module's interface takes.
enum Call<'a> {
    /// 1.0.0 `inspector`.
    Std(&'a Batch),
    /// 1.2.0 `flat-inspector`.
    Flat {
        data: &'a [u8],
        entries: &'a [u32],
        buffers: &'a [u32],
    },
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
