//! [`ScanInstance`]: one live instance of an AV module (`scanner`, 1.1.0)
//! and the scans running in it.
//!
//! A scan is a guest resource: created with its options, fed chunk by chunk
//! (each `feed` under its own fuel budget, so a module that loops costs one
//! call's fuel), finished once. Beyond the per-call fuel, every scan has a
//! scan-time budget (fuel summed over its calls): running out of it ends the
//! scan with the verdict [`ScanLimit::ScanTime`], not a fault. A trap poisons
//! the instance like an `inspect` trap does: that scan gets the fault, other
//! scans open in the same instance are lost (their next call says so), and
//! the next [`begin`](ScanInstance::begin) starts a fresh instance.

use std::collections::HashMap;
use std::fmt;
use std::mem;

use wasmtime::component::ResourceAny;
use wasmtime::Store;

use crate::engine::classify;
use crate::error::{Fault, FaultKind};
use crate::host::{HostState, LogLine};
use crate::instance::{truncate, MAX_MODULE_ERROR};
use crate::module::{LoadedModule, Pre};
use crate::wit::av::{self, AvModule};

/// Fuel per millisecond when a scan-time limit is given in time (e.g.
/// `--max-scantime`): wasmtime fuel is about one unit per wasm operator,
/// ~1 ns each on this class of machine (see [`Limits`](crate::Limits)).
pub const FUEL_PER_MS: u64 = 1_000_000;

/// Options of one scan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// Content past this many bytes is not scanned (verdict
    /// [`ScanLimit::FileSize`]); 0 means no limit.
    pub max_file_size: u64,
    /// Report every matching signature instead of stopping at the first.
    pub all_match: bool,
    /// Scan-time budget in fuel; `None` takes `limits.fuel_per_scan`.
    pub max_scan_fuel: Option<u64>,
}

/// A limit that ended a scan before the end of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanLimit {
    /// The content was longer than `max_file_size` (the module said so).
    FileSize,
    /// The scan used its whole scan-time (fuel) budget.
    ScanTime,
}

impl fmt::Display for ScanLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScanLimit::FileSize => "max file size",
            ScanLimit::ScanTime => "scan time",
        })
    }
}

/// One signature that matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detection {
    /// Index into the module's `rules` (its `msg` is the signature name).
    pub signature: u32,
    /// Offset in the content where the match starts (0 for whole-content
    /// signatures: hashes, logical signatures).
    pub offset: u64,
}

/// What a finished scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Matching signatures, each checked to exist in the module.
    pub detections: Vec<Detection>,
    /// Set when a limit cut the scan short (detections may still be there).
    pub limit_exceeded: Option<ScanLimit>,
    /// Bytes fed to the module.
    pub bytes: u64,
}

/// Names one scan of a [`ScanInstance`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScanId {
    id: u64,
    generation: u64,
}

struct Open {
    handle: ResourceAny,
    fuel_left: u64,
    bytes: u64,
}

enum ScanState {
    /// Live in the current instance.
    Open(Open),
    /// Ended by a limit; `finish` reports it without calling the module.
    Ended { limit: ScanLimit, bytes: u64 },
}

enum Slot {
    Live {
        store: Store<HostState>,
        bindings: AvModule,
    },
    Parked(HostState),
}

/// One instance of an AV module, owned by one worker (or one `sandgate
/// scan`). Holds any number of open scans (e.g. one per stream direction).
pub struct ScanInstance {
    module: LoadedModule,
    slot: Slot,
    scans: HashMap<u64, ScanState>,
    next_id: u64,
    generation: u64,
}

impl fmt::Debug for ScanInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanInstance")
            .field("module", &self.module.name())
            .field("live", &matches!(self.slot, Slot::Live { .. }))
            .field("open_scans", &self.scans.len())
            .finish_non_exhaustive()
    }
}

/// How a guest call ended.
enum Call<T> {
    Done(T),
    /// Fuel ran out with the scan's own budget binding: the scan-time limit.
    ScanTime,
}

impl ScanInstance {
    pub(crate) fn new(module: LoadedModule) -> Result<Self, Fault> {
        if !matches!(module.inner.pre, Pre::Av(_)) {
            return Err(module.fault(
                FaultKind::Instantiate,
                "is an IPS module (exports `inspector`, not `scanner`): it cannot scan files"
                    .into(),
            ));
        }
        let state = module.inner.engine.new_host_state();
        let mut this = ScanInstance {
            module,
            slot: Slot::Parked(state),
            scans: HashMap::new(),
            next_id: 0,
            generation: 0,
        };
        this.revive()?;
        Ok(this)
    }

    /// The module this is an instance of.
    pub fn module(&self) -> &LoadedModule {
        &self.module
    }

    /// Whether the last call poisoned the instance (the next `begin`
    /// restarts it).
    pub fn is_poisoned(&self) -> bool {
        matches!(self.slot, Slot::Parked(_))
    }

    /// Takes the log lines the module emitted since the last call.
    pub fn take_logs(&mut self) -> Vec<LogLine> {
        self.state_mut().take_logs()
    }

    /// Scans open (begun, not finished).
    pub fn open_scans(&self) -> usize {
        self.scans.len()
    }

    /// Starts a scan. Restarts the instance first if a trap poisoned it.
    pub fn begin(&mut self, options: &ScanOptions) -> Result<ScanId, Fault> {
        if self.is_poisoned() {
            self.revive()?;
            self.module.inner.counters.reinstantiated();
        }
        let limits = &self.module.inner.engine.config().limits;
        let mut fuel_left = options.max_scan_fuel.unwrap_or(limits.fuel_per_scan);
        let wit_options = av::ScanOptions {
            max_file_size: options.max_file_size,
            all_match: options.all_match,
        };
        let budget = self.module.inner.fuel.for_finish();
        let created = self.call(budget, &mut fuel_left, |store, b| {
            b.sandgate_pattern_scanner()
                .scan()
                .call_constructor(store, wit_options)
        })?;
        let id = ScanId {
            id: self.next_id,
            generation: self.generation,
        };
        self.next_id += 1;
        let state = match created {
            Call::Done(handle) => ScanState::Open(Open {
                handle,
                fuel_left,
                bytes: 0,
            }),
            Call::ScanTime => ScanState::Ended {
                limit: ScanLimit::ScanTime,
                bytes: 0,
            },
        };
        self.scans.insert(id.id, state);
        Ok(id)
    }

    /// Feeds the next chunk of scan `id`. Returns true when the outcome is
    /// settled (a detection without all-match, or a limit reached): the
    /// caller may skip the rest and [`finish`](Self::finish).
    ///
    /// A fault ends the scan (it is forgotten; the fail policy applies).
    pub fn feed(&mut self, id: ScanId, chunk: &[u8]) -> Result<bool, Fault> {
        let mut open = match self.take(id)? {
            ScanState::Open(open) => open,
            ended @ ScanState::Ended { .. } => {
                self.scans.insert(id.id, ended);
                return Ok(true);
            }
        };
        let budget = self.module.inner.fuel.for_feed(chunk.len());
        let handle = open.handle;
        let result = self.call(budget, &mut open.fuel_left, |store, b| {
            b.sandgate_pattern_scanner()
                .scan()
                .call_feed(store, handle, chunk)
        });
        open.bytes = open
            .bytes
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        match result {
            Ok(Call::Done(settled)) => {
                self.scans.insert(id.id, ScanState::Open(open));
                Ok(settled)
            }
            Ok(Call::ScanTime) => {
                self.scans.insert(
                    id.id,
                    ScanState::Ended {
                        limit: ScanLimit::ScanTime,
                        bytes: open.bytes,
                    },
                );
                Ok(true)
            }
            Err(fault) => {
                self.drop_handle(handle);
                Err(fault)
            }
        }
    }

    /// Ends scan `id` and returns what it found. Every detection is checked
    /// to name a signature the module declared; a scan ended by the
    /// scan-time limit reports it without calling the module again.
    pub fn finish(&mut self, id: ScanId) -> Result<ScanReport, Fault> {
        let mut open = match self.take(id)? {
            ScanState::Open(open) => open,
            ScanState::Ended { limit, bytes } => {
                return Ok(ScanReport {
                    detections: Vec::new(),
                    limit_exceeded: Some(limit),
                    bytes,
                })
            }
        };
        let budget = self.module.inner.fuel.for_finish();
        let handle = open.handle;
        let result = self.call(budget, &mut open.fuel_left, |store, b| {
            b.sandgate_pattern_scanner()
                .scan()
                .call_finish(store, handle)
        });
        self.drop_handle(handle);
        match result? {
            Call::ScanTime => Ok(ScanReport {
                detections: Vec::new(),
                limit_exceeded: Some(ScanLimit::ScanTime),
                bytes: open.bytes,
            }),
            Call::Done(Err(mut message)) => {
                truncate(&mut message, MAX_MODULE_ERROR);
                Err(self.module.fault(FaultKind::ModuleError, message))
            }
            Call::Done(Ok(result)) => self.check_result(result, open.bytes),
        }
    }

    /// Scans everything `reader` yields, `chunk` bytes per `feed` (so the
    /// content is never held whole), stopping early when the outcome is
    /// settled. An I/O error ends the scan and is returned as `Err(Ok(e))`;
    /// a module fault as `Err(Err(fault))`.
    pub fn scan_reader(
        &mut self,
        reader: &mut dyn std::io::Read,
        options: &ScanOptions,
        chunk: usize,
    ) -> Result<ScanReport, Result<std::io::Error, Fault>> {
        let id = self.begin(options).map_err(Err)?;
        let mut buf = vec![0u8; chunk.max(1)];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.abandon(id);
                    return Err(Ok(e));
                }
            };
            if self.feed(id, &buf[..n]).map_err(Err)? {
                break;
            }
        }
        self.finish(id).map_err(Err)
    }

    /// Forgets scan `id` without a verdict (e.g. its flow expired unread).
    pub fn abandon(&mut self, id: ScanId) {
        if id.generation != self.generation {
            return;
        }
        if let Some(ScanState::Open(open)) = self.scans.remove(&id.id) {
            self.drop_handle(open.handle);
        }
    }

    /// The scan's state, removed from the table; a fault when the scan is
    /// unknown or was lost with a poisoned instance.
    fn take(&mut self, id: ScanId) -> Result<ScanState, Fault> {
        match self.scans.remove(&id.id) {
            Some(state) => Ok(state),
            None if id.generation != self.generation => Err(self.module.fault(
                FaultKind::Instantiate,
                "scan lost: the instance was restarted after another scan faulted".into(),
            )),
            None => Err(self.module.fault(
                FaultKind::BadOutput,
                "no such scan (already finished, or ended by a fault)".into(),
            )),
        }
    }

    /// Runs one guest call under `min(budget, scan fuel left)`; charges the
    /// fuel used to the scan. A trap poisons the instance: the scan-time
    /// verdict when the scan's own budget was the binding one, a fault
    /// otherwise.
    fn call<T>(
        &mut self,
        budget: u64,
        fuel_left: &mut u64,
        f: impl FnOnce(&mut Store<HostState>, &AvModule) -> wasmtime::Result<T>,
    ) -> Result<Call<T>, Fault> {
        let Slot::Live { store, bindings } = &mut self.slot else {
            return Err(self
                .module
                .fault(FaultKind::Instantiate, "no live instance".into()));
        };
        let scan_binds = *fuel_left <= budget;
        let given = budget.min(*fuel_left);
        let armed = self.module.inner.engine.arm(store, given);
        store.data_mut().begin_call();
        let result = f(store, bindings);
        let used = armed.used(store);
        *fuel_left = fuel_left.saturating_sub(used);
        self.module.inner.counters.call(used);
        match result {
            Ok(v) => Ok(Call::Done(v)),
            Err(e) => {
                let (kind, message) = classify(&e, store.data());
                self.poison();
                if kind == FaultKind::FuelExhausted && scan_binds {
                    return Ok(Call::ScanTime);
                }
                Err(self.module.fault(kind, message))
            }
        }
    }

    fn check_result(&self, result: av::ScanResult, bytes: u64) -> Result<ScanReport, Fault> {
        let signatures = self.module.info().rules.len();
        if result.detections.len() > signatures {
            return Err(self.module.fault(
                FaultKind::BadOutput,
                format!(
                    "{} detections for {signatures} signatures",
                    result.detections.len()
                ),
            ));
        }
        let mut detections = Vec::with_capacity(result.detections.len());
        for (i, d) in result.detections.iter().enumerate() {
            if usize::try_from(d.signature).map_or(true, |s| s >= signatures) {
                return Err(self.module.fault(
                    FaultKind::BadOutput,
                    format!(
                        "detection {i} names signature {}, the module declared {signatures}",
                        d.signature
                    ),
                ));
            }
            detections.push(Detection {
                signature: d.signature,
                offset: d.offset,
            });
        }
        Ok(ScanReport {
            detections,
            limit_exceeded: result.limit_exceeded.map(|l| match l {
                av::ScanLimit::MaxFileSize => ScanLimit::FileSize,
            }),
            bytes,
        })
    }

    /// Drops a guest scan handle (runs its destructor under a small budget);
    /// a trap there poisons the instance like any other.
    fn drop_handle(&mut self, handle: ResourceAny) {
        let budget = self.module.inner.fuel.for_finish();
        let Slot::Live { store, .. } = &mut self.slot else {
            return;
        };
        self.module.inner.engine.arm(store, budget);
        store.data_mut().begin_call();
        if let Err(e) = handle.resource_drop(&mut *store) {
            let (kind, _) = classify(&e, store.data());
            self.poison();
            self.module.inner.counters.fault(kind);
        }
    }

    fn state_mut(&mut self) -> &mut HostState {
        match &mut self.slot {
            Slot::Live { store, .. } => store.data_mut(),
            Slot::Parked(state) => state,
        }
    }

    /// Discards the store and every scan open in it (scans already ended by
    /// a limit keep their verdict); keeps the host state.
    fn poison(&mut self) {
        let slot = mem::replace(&mut self.slot, Slot::Parked(HostState::placeholder()));
        self.slot = match slot {
            Slot::Live { store, .. } => Slot::Parked(store.into_data()),
            parked => parked,
        };
        self.scans
            .retain(|_, s| matches!(s, ScanState::Ended { .. }));
        self.generation += 1;
    }

    /// Instantiates and warms up (one empty scan under `fuel_warmup`, so
    /// decoding the signature data is paid once per instance). A failed
    /// warm-up leaves a cold instance for the real scan to meet.
    fn revive(&mut self) -> Result<(), Fault> {
        let Pre::Av(pre) = &self.module.inner.pre else {
            return Err(self
                .module
                .fault(FaultKind::Instantiate, "not an AV module".into()));
        };
        let state = match mem::replace(&mut self.slot, Slot::Parked(HostState::placeholder())) {
            Slot::Parked(state) => state,
            live @ Slot::Live { .. } => {
                self.slot = live;
                return Ok(());
            }
        };
        let mut store = self.module.inner.engine.new_store(state);
        let bindings = match pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => {
                let (_, message) = classify(&e, store.data());
                self.slot = Slot::Parked(store.into_data());
                return Err(self.module.fault(FaultKind::Instantiate, message));
            }
        };
        let engine = &self.module.inner.engine;
        engine.arm(&mut store, engine.config().limits.fuel_warmup);
        let warm = (|| -> wasmtime::Result<()> {
            let scan = bindings.sandgate_pattern_scanner().scan();
            let h = scan.call_constructor(
                &mut store,
                av::ScanOptions {
                    max_file_size: 0,
                    all_match: false,
                },
            )?;
            scan.call_feed(&mut store, h, &[])?;
            let _ = scan.call_finish(&mut store, h)?;
            h.resource_drop(&mut store)
        })();
        if warm.is_ok() {
            self.slot = Slot::Live { store, bindings };
            return Ok(());
        }
        // The warm-up trapped: start cold; the real call meets the fault.
        let state = store.into_data();
        let mut store = self.module.inner.engine.new_store(state);
        match pre.instantiate(&mut store) {
            Ok(bindings) => {
                self.slot = Slot::Live { store, bindings };
                Ok(())
            }
            Err(e) => {
                let (_, message) = classify(&e, store.data());
                self.slot = Slot::Parked(store.into_data());
                Err(self.module.fault(FaultKind::Instantiate, message))
            }
        }
    }
}
