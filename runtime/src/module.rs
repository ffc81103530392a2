//! [`LoadedModule`]: a module that passed the load check, with what it said
//! about itself, its fuel budget and its counters.

use std::sync::Arc;

use crate::check::Inventory;
use crate::config::Limits;
use crate::counters::FaultCounters;
use crate::described::Described;
use crate::engine::{classify, Engine};
use crate::error::{Fault, FaultKind, LoadError};
use crate::host::{HostState, LogLine};
use crate::instance::ModuleInstance;
use crate::scan::ScanInstance;
use crate::version::InterfaceVersion;
use crate::wit::{self, ModuleInfo, ModuleKind};

/// Most rules one module may declare.
pub const MAX_RULES: usize = 1_000_000;
/// Longest `name`, `version`, `classtype`, reference or metadata entry.
pub const MAX_SHORT_STRING: usize = 1024;
/// Longest rule `msg`.
pub const MAX_MSG: usize = 4096;
/// Most references, metadata entries or thresholds per rule.
pub const MAX_RULE_LIST: usize = 256;

/// How much fuel one `inspect` call gets:
/// `min(max, base + per_packet × packets + per_byte × buffer bytes)`.
///
/// `per_packet`/`per_byte` are the larger of the engine's default and the
/// module's own estimate from `describe`, each capped at the configured max.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FuelBudget {
    /// Fixed fuel per call.
    pub base: u64,
    /// Fuel per packet in the batch.
    pub per_packet: u64,
    /// Fuel per byte of the batch buffer.
    pub per_byte: u64,
    /// Cap on the total.
    pub max: u64,
}

impl FuelBudget {
    pub(crate) fn new(limits: &Limits, info: &ModuleInfo) -> Self {
        Self {
            base: limits.fuel_per_call_base,
            per_packet: info
                .fuel_per_packet
                .clamp(limits.fuel_per_packet, limits.fuel_per_packet_max),
            per_byte: info
                .fuel_per_byte
                .clamp(limits.fuel_per_byte, limits.fuel_per_byte_max),
            max: limits.fuel_per_call_max,
        }
    }

    /// Fuel for one `feed` of an AV scan with a `bytes`-byte chunk: the same
    /// rates as a one-packet batch of that size.
    pub fn for_feed(&self, bytes: usize) -> u64 {
        self.for_batch(1, bytes)
    }

    /// Fuel for one `finish` of an AV scan (hash finalisation, logical
    /// signatures): the per-call base plus the module's per-packet rate,
    /// which AV modules state as the cost of a `finish`.
    pub fn for_finish(&self) -> u64 {
        self.for_batch(1, 0)
    }

    /// Fuel for a batch of `packets` packets in a `bytes`-byte buffer.
    pub fn for_batch(&self, packets: usize, bytes: usize) -> u64 {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        self.base
            .saturating_add(self.per_packet.saturating_mul(n(packets)))
            .saturating_add(self.per_byte.saturating_mul(n(bytes)))
            .min(self.max)
    }
}

/// The pre-instantiated component, typed by the world the module exports.
pub(crate) enum Pre {
    /// `ips-module`: the engine calls `inspector`.
    Ips(wit::IpsModulePre<HostState>),
    /// `av-module`: the engine calls `scanner`.
    Av(wit::av::AvModulePre<HostState>),
    /// `flat-ips-module` (1.2.0): the engine calls `flat-inspector`.
    Flat(wit::flat::FlatIpsModulePre<HostState>),
}

/// A checked, compiled and described module. Cheap to clone; instantiate it
/// once per worker with [`instantiate`](Self::instantiate).
#[derive(Clone)]
pub struct LoadedModule {
    pub(crate) inner: Arc<ModuleInner>,
}

pub(crate) struct ModuleInner {
    pub(crate) name: Arc<str>,
    pub(crate) engine: Engine,
    pub(crate) pre: Pre,
    pub(crate) info: ModuleInfo,
    pub(crate) interface_version: InterfaceVersion,
    pub(crate) inventory: Inventory,
    pub(crate) fuel: FuelBudget,
    pub(crate) counters: FaultCounters,
    pub(crate) load_logs: Vec<LogLine>,
    pub(crate) describe_outcome: DescribeOutcome,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("name", &self.inner.name)
            .field("interface_version", &self.inner.interface_version)
            .field("rules", &self.inner.info.rules.len())
            .finish_non_exhaustive()
    }
}

impl LoadedModule {
    /// The name the host loaded it under.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// What the module said about itself in `describe`.
    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    /// What it is, by the interface it exports: [`ModuleKind::Ips`] for an
    /// `inspector` (run with [`instantiate`](Self::instantiate)),
    /// [`ModuleKind::Av`] for a `scanner` (run with
    /// [`instantiate_scanner`](Self::instantiate_scanner)).
    pub fn kind(&self) -> ModuleKind {
        match self.inner.pre {
            Pre::Ips(_) | Pre::Flat(_) => ModuleKind::Ips,
            Pre::Av(_) => ModuleKind::Av,
        }
    }

    /// Whether this module reads application-layer buffers: it exports
    /// `flat-inspector@1.2.x` and gets transaction entries and their buffers
    /// through [`ModuleInstance::inspect_app`]. A 1.0.0 module never sees
    /// transaction entries.
    pub fn wants_app(&self) -> bool {
        matches!(self.inner.pre, Pre::Flat(_))
    }

    /// The version of the `sandgate:pattern/inspector` (or `scanner`, or
    /// `flat-inspector`) export it was built against.
    pub fn interface_version(&self) -> InterfaceVersion {
        self.inner.interface_version
    }

    /// The raw `sandgate-manifest` custom section, if the component has one.
    pub fn manifest(&self) -> Option<&[u8]> {
        self.inner.inventory.manifest.as_deref()
    }

    /// Top-level import names of the component.
    pub fn imports(&self) -> &[String] {
        &self.inner.inventory.imports
    }

    /// Top-level export names of the component.
    pub fn exports(&self) -> &[String] {
        &self.inner.inventory.exports
    }

    /// The fuel budget every `inspect` call of this module gets.
    pub fn fuel_budget(&self) -> &FuelBudget {
        &self.inner.fuel
    }

    /// Calls and faults of all instances of this module.
    pub fn counters(&self) -> &FaultCounters {
        &self.inner.counters
    }

    /// The engine that loaded it (and its configuration).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Lines the module logged while instantiating and describing itself
    /// (on a [`DescribeOutcome::Cached`] load, those of the load that
    /// computed the answer).
    pub fn load_logs(&self) -> &[LogLine] {
        &self.inner.load_logs
    }

    /// Whether `describe` ran during this load or its answer came from the
    /// artifact cache.
    pub fn describe_outcome(&self) -> DescribeOutcome {
        self.inner.describe_outcome
    }

    /// A fresh instance with empty flow state, for `inspect`. An AV module
    /// has no `inspect`: this fails with [`FaultKind::Instantiate`] naming
    /// the module; use [`instantiate_scanner`](Self::instantiate_scanner).
    pub fn instantiate(&self) -> Result<ModuleInstance, Fault> {
        ModuleInstance::new(self.clone())
    }

    /// A fresh instance for streaming scans; an IPS module has no scanner
    /// and fails with [`FaultKind::Instantiate`].
    pub fn instantiate_scanner(&self) -> Result<ScanInstance, Fault> {
        ScanInstance::new(self.clone())
    }

    /// Counts a fault of this module and builds it.
    pub(crate) fn fault(&self, kind: FaultKind, message: String) -> Fault {
        self.inner.counters.fault(kind);
        Fault {
            module: Arc::clone(&self.inner.name),
            kind,
            message,
        }
    }
}

enum Bindings {
    Ips(wit::IpsModule),
    Av(wit::av::AvModule),
    Flat(wit::flat::FlatIpsModule),
}

/// Where a loaded module's `describe` answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescribeOutcome {
    /// The module was instantiated and `describe` called during this load.
    Called,
    /// Taken from the artifact cache's copy of an earlier answer for the
    /// same component, engine and limits, and checked again like a fresh
    /// one; no module code ran during the load.
    Cached,
}

/// Instantiates the module once and calls `describe` under the caps; the
/// answer is still unchecked ([`check_described`]).
pub(crate) fn describe(engine: &Engine, name: &str, pre: &Pre) -> Result<Described, LoadError> {
    let limits = &engine.config().limits;
    let mut store = engine.new_store(engine.new_host_state());
    let instantiated = match pre {
        Pre::Ips(p) => p.instantiate(&mut store).map(Bindings::Ips),
        Pre::Av(p) => p.instantiate(&mut store).map(Bindings::Av),
        Pre::Flat(p) => p.instantiate(&mut store).map(Bindings::Flat),
    };
    let bindings = match instantiated {
        Ok(b) => b,
        Err(e) => {
            let (kind, detail) = classify(&e, store.data());
            return Err(LoadError::Instantiate {
                module: name.to_string(),
                kind,
                detail,
            });
        }
    };
    engine.arm(&mut store, limits.fuel_describe);
    store.data_mut().begin_call();
    let described = match &bindings {
        Bindings::Ips(b) => b.sandgate_pattern_inspector().call_describe(&mut store),
        Bindings::Av(b) => b.sandgate_pattern_scanner().call_describe(&mut store),
        Bindings::Flat(b) => b
            .sandgate_pattern_flat_inspector()
            .call_describe(&mut store),
    };
    match described {
        Ok(info) => Ok(Described {
            info,
            logs: store.data_mut().take_logs(),
        }),
        Err(e) => {
            let (kind, detail) = classify(&e, store.data());
            Err(LoadError::Describe {
                module: name.to_string(),
                kind,
                detail,
            })
        }
    }
}

/// The checks on a `describe` answer, fresh or cached: the kind it declares
/// matches the interface it exports, and [`validate_info`]'s bounds.
pub(crate) fn check_described(name: &str, pre: &Pre, info: &ModuleInfo) -> Result<(), LoadError> {
    let (exported, interface) = match pre {
        Pre::Ips(_) => (ModuleKind::Ips, "inspector"),
        Pre::Flat(_) => (ModuleKind::Ips, "flat-inspector"),
        Pre::Av(_) => (ModuleKind::Av, "scanner"),
    };
    if info.kind != exported {
        return Err(LoadError::Describe {
            module: name.to_string(),
            kind: FaultKind::BadOutput,
            detail: format!(
                "declares kind {:?} but exports the {interface} interface",
                info.kind,
            ),
        });
    }
    validate_info(info).map_err(|detail| LoadError::Describe {
        module: name.to_string(),
        kind: FaultKind::BadOutput,
        detail,
    })
}

/// Last load step: the module from a checked `describe` answer, with the
/// fuel budget the engine's limits and the answer give.
pub(crate) fn build(
    engine: &Engine,
    name: &str,
    pre: Pre,
    inventory: Inventory,
    interface_version: InterfaceVersion,
    described: Described,
    describe_outcome: DescribeOutcome,
) -> LoadedModule {
    let fuel = FuelBudget::new(&engine.config().limits, &described.info);
    LoadedModule {
        inner: Arc::new(ModuleInner {
            name: Arc::from(name),
            engine: engine.clone(),
            pre,
            info: described.info,
            interface_version,
            inventory,
            fuel,
            counters: FaultCounters::default(),
            load_logs: described.logs,
            describe_outcome,
        }),
    }
}

/// Bounds on what `describe` may return, so a module cannot make the host
/// hold or print unbounded data; names the offending field. Field names are
/// only formatted for the error (a full rule set has ~100,000 strings).
pub(crate) fn validate_info(info: &ModuleInfo) -> Result<(), String> {
    let short = |what: &dyn Fn() -> String, s: &str| {
        if s.len() > MAX_SHORT_STRING {
            Err(format!(
                "{} is {} bytes, limit {MAX_SHORT_STRING}",
                what(),
                s.len()
            ))
        } else {
            Ok(())
        }
    };
    short(&|| "name".into(), &info.name)?;
    short(&|| "version".into(), &info.version)?;
    if info.name.is_empty() {
        return Err("name is empty".into());
    }
    if info.rules.len() > MAX_RULES {
        return Err(format!(
            "declares {} rules, limit {MAX_RULES}",
            info.rules.len()
        ));
    }
    for (i, rule) in info.rules.iter().enumerate() {
        let at = |field: &str| format!("rules[{i}] (sid {}) {field}", rule.sid);
        if rule.msg.len() > MAX_MSG {
            return Err(format!(
                "{} is {} bytes, limit {MAX_MSG}",
                at("msg"),
                rule.msg.len()
            ));
        }
        if let Some(c) = &rule.classtype {
            short(&|| at("classtype"), c)?;
        }
        for (what, list) in [
            ("references", &rule.references),
            ("metadata", &rule.metadata),
        ] {
            if list.len() > MAX_RULE_LIST {
                return Err(format!(
                    "{} has {} entries, limit {MAX_RULE_LIST}",
                    at(what),
                    list.len()
                ));
            }
            for s in list {
                short(&|| at(what), s)?;
            }
        }
        if rule.thresholds.len() > MAX_RULE_LIST {
            return Err(format!(
                "{} has {} entries, limit {MAX_RULE_LIST}",
                at("thresholds"),
                rule.thresholds.len()
            ));
        }
    }
    Ok(())
}
