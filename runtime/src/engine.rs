//! [`Engine`]: one wasmtime engine and linker configured from
//! [`EngineConfig`], and [`Engine::load`], which runs the load-time check and
//! asks the module to describe itself.

use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::{ManglingAndAbi, Resolve};

use crate::check::{self, Reference, Role};
use crate::config::{AddressSpace, EngineConfig, Metering};
use crate::described::Described;
use crate::error::{EngineError, FaultKind, LoadError};
use crate::host::HostState;
use crate::meter::{self, Armed, Ticker};
use crate::module::{self, DescribeOutcome, LoadedModule, Pre};
use crate::wit;

/// The newest WIT this build implements, compiled in; the reference for
/// step 6 (1.2.0 contains 1.1.0 and 1.0.0 unchanged).
const WIT_1_2_0: &str = include_str!("../../wit/v1.2.0/pattern.wit");

/// Guard pages after each linear memory in [`AddressSpace::Compact`].
const COMPACT_GUARD_BYTES: u64 = 64 * 1024;
/// Reservation and guard in [`AddressSpace::Large`]: every 32-bit address
/// plus offset lands in reserved memory, so compiled code needs no bounds
/// check on loads and stores.
const LARGE_RESERVATION_BYTES: u64 = 4 << 30;
const LARGE_GUARD_BYTES: u64 = 2 << 30;

/// How instances get their memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: instantiation in microseconds.
    Pooling {
        /// Live instances the pool holds.
        max_instances: u32,
    },
    /// An mmap per instance.
    OnDemand {
        /// Why the pool is not used: disabled in the config, or wasmtime's
        /// error reserving it (e.g. too little virtual address space).
        reason: String,
    },
}

/// The Sandgate runtime engine: cheap to clone, shareable across threads.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: EngineConfig,
    engine: wasmtime::Engine,
    linker: Linker<HostState>,
    reference: Reference,
    allocator: Allocator,
    /// Advances the epoch under [`Metering::Epoch`]; stops when dropped.
    _ticker: Option<Ticker>,
}

impl Engine {
    /// Validates `config`, builds the wasmtime engine (pooling, falling back
    /// to on-demand), links the host functions and builds the reference
    /// component for export type checks.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        config.validate()?;
        let (engine, allocator) = build_engine(&config)?;
        let mut linker = Linker::<HostState>::new(&engine);
        wit::IpsModule::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| EngineError::Reference(format!("linking host functions: {e:#}")))?;
        let reference = build_reference(&engine)?;
        let ticker = match config.metering {
            Metering::Epoch { tick_us } => {
                Some(Ticker::start(&engine, tick_us).map_err(|e| {
                    EngineError::Wasmtime(format!("starting the epoch ticker: {e}"))
                })?)
            }
            Metering::Fuel | Metering::Unmetered => None,
        };
        Ok(Engine {
            inner: Arc::new(EngineInner {
                config,
                engine,
                linker,
                reference,
                allocator,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Whether the instance pool is in use, and if not, why.
    pub fn allocator(&self) -> &Allocator {
        &self.inner.allocator
    }

    /// Checks, compiles and describes a module; refuses it with a
    /// [`LoadError`] that names the module, the import or export at fault,
    /// the version it wants and the versions this engine offers.
    ///
    /// Order: size, parse, version gates, allow-list (no code compiled yet),
    /// compile, link, export type check (no code run yet), instantiate and
    /// call `describe` under the fuel and memory caps, validate its answer.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedModule, LoadError> {
        self.load_with(name, bytes, &Fresh { name, bytes })
    }

    /// The wasmtime engine, for the artifact cache's keys.
    pub(crate) fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// [`Engine::load`] with the compile step and a store of `describe`
    /// answers supplied by the caller (the artifact cache); every check
    /// still runs on `bytes`, and a stored answer gets the same checks as a
    /// fresh one (a stored answer that fails them is replaced by a fresh
    /// `describe`).
    pub(crate) fn load_with(
        &self,
        name: &str,
        bytes: &[u8],
        hooks: &dyn LoadHooks,
    ) -> Result<LoadedModule, LoadError> {
        let inner = &*self.inner;
        let offered = &inner.config.interfaces;
        let inventory = check::scan(name, bytes, &inner.config.limits)?;
        let role = check::gate(name, &inventory, offered)?;
        let component = hooks.compile(&inner.engine)?;
        let pre = inner.linker.instantiate_pre(&component).map_err(|e| {
            check::link_error(
                name,
                &e,
                &inner.engine,
                &component,
                &inner.reference,
                offered,
            )
        })?;
        check::check_exports(
            name,
            &inner.engine,
            &component,
            &inner.reference,
            offered,
            role.map(|(r, _)| r),
        )?;
        let Some((role, interface_version)) = role else {
            // check_exports found an inspector, so the gate saw its version.
            return Err(LoadError::MissingExport {
                module: name.to_string(),
                export: format!("{}/{}", crate::version::PACKAGE, check::INSPECTOR),
                offered: offered.clone(),
            });
        };
        let export_type = |e: wasmtime::Error| LoadError::ExportType {
            module: name.to_string(),
            export: format!("{}/{}", crate::version::PACKAGE, role.interface()),
            offered: offered.clone(),
            detail: format!("{e:#}"),
        };
        let pre = match role {
            Role::Inspector => Pre::Ips(wit::IpsModulePre::new(pre).map_err(export_type)?),
            Role::Scanner => Pre::Av(wit::av::AvModulePre::new(pre).map_err(export_type)?),
            Role::FlatInspector => {
                Pre::Flat(wit::flat::FlatIpsModulePre::new(pre).map_err(export_type)?)
            }
        };
        let cached = hooks
            .cached_describe()
            .filter(|d| module::check_described(name, &pre, &d.info).is_ok());
        let (described, outcome) = match cached {
            Some(d) => (d, DescribeOutcome::Cached),
            None => {
                let d = module::describe(self, name, &pre)?;
                module::check_described(name, &pre, &d.info)?;
                hooks.keep_describe(&d);
                (d, DescribeOutcome::Called)
            }
        };
        Ok(module::build(
            self,
            name,
            pre,
            inventory,
            interface_version,
            described,
            outcome,
        ))
    }

    /// A store with fresh host state, limiter attached, budget for
    /// instantiation.
    pub(crate) fn new_store(&self, state: HostState) -> Store<HostState> {
        let mut store = Store::new(&self.inner.engine, state);
        store.data_mut().begin_call();
        store.limiter(|s| &mut s.limiter);
        let limits = &self.inner.config.limits;
        let budget = match self.inner.config.metering {
            // Instantiation copies data segments: host work fuel never
            // counts but a wall-clock deadline does (a 20 MiB rule set takes
            // longer than the instantiation fuel's 10 ms on a busy box), so
            // it gets the warm-up call's allowance.
            Metering::Epoch { .. } => limits.fuel_instantiate.max(limits.fuel_warmup),
            Metering::Fuel | Metering::Unmetered => limits.fuel_instantiate,
        };
        self.arm(&mut store, budget);
        store
    }

    /// Gives `store` a budget of `budget` fuel units for its next call,
    /// metered as the config says.
    pub(crate) fn arm(&self, store: &mut Store<HostState>, budget: u64) -> Armed {
        meter::arm(&self.inner.config.metering, store, budget)
    }

    pub(crate) fn new_host_state(&self) -> HostState {
        HostState::new(&self.inner.config.limits, self.inner.config.memory_cap())
    }
}

/// What [`Engine::load_with`] takes from its caller: how to get compiled
/// code, and where earlier `describe` answers may be found and new ones kept.
pub(crate) trait LoadHooks {
    /// The compiled component for the bytes being loaded.
    fn compile(&self, engine: &wasmtime::Engine) -> Result<Component, LoadError>;
    /// An earlier answer of `describe` for these bytes, engine and limits.
    fn cached_describe(&self) -> Option<Described>;
    /// Keeps a fresh answer that passed its checks.
    fn keep_describe(&self, described: &Described);
}

/// A plain load: compile now, call `describe`, keep nothing.
struct Fresh<'a> {
    name: &'a str,
    bytes: &'a [u8],
}

impl LoadHooks for Fresh<'_> {
    fn compile(&self, engine: &wasmtime::Engine) -> Result<Component, LoadError> {
        Component::new(engine, self.bytes).map_err(|e| LoadError::Compile {
            module: self.name.to_string(),
            detail: format!("{e:#}"),
        })
    }

    fn cached_describe(&self) -> Option<Described> {
        None
    }

    fn keep_describe(&self, _: &Described) {}
}

fn base_config(config: &EngineConfig) -> Config {
    let mut c = Config::new();
    c.consume_fuel(config.metering == Metering::Fuel)
        .epoch_interruption(matches!(config.metering, Metering::Epoch { .. }))
        .max_wasm_stack(usize::try_from(config.limits.max_wasm_stack).unwrap_or(512 * 1024))
        .wasm_component_model(true)
        .memory_reservation_for_growth(0);
    // For `perf record`: name the modules' compiled functions in
    // /tmp/perf-PID.map (see BENCHMARKS.md, "Profiling the guest").
    if std::env::var_os("SANDGATE_PERF_MAP").is_some() {
        c.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    match config.address_space {
        AddressSpace::Large => c
            .memory_reservation(LARGE_RESERVATION_BYTES)
            .memory_guard_size(LARGE_GUARD_BYTES),
        AddressSpace::Compact => c
            .memory_reservation(config.memory_cap() as u64)
            .memory_guard_size(COMPACT_GUARD_BYTES),
    };
    c
}

fn build_engine(config: &EngineConfig) -> Result<(wasmtime::Engine, Allocator), EngineError> {
    let reason = if config.pool.enabled {
        let n = config.pool.max_instances;
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .max_core_instances_per_component(16)
            .total_memories(n)
            .max_memories_per_component(2)
            .max_memory_size(config.memory_cap())
            .total_tables(n.saturating_mul(4))
            .max_tables_per_component(8)
            .max_tables_per_module(2)
            .table_elements(usize::try_from(config.limits.table_max_elements).unwrap_or(10_000));
        let mut c = base_config(config);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match wasmtime::Engine::new(&c) {
            Ok(engine) => return Ok((engine, Allocator::Pooling { max_instances: n })),
            Err(e) => format!("instance pool could not be reserved: {e:#}"),
        }
    } else {
        "instance pool disabled in the config".to_string()
    };
    let mut c = base_config(config);
    c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    let engine = wasmtime::Engine::new(&c).map_err(|e| EngineError::Wasmtime(format!("{e:#}")))?;
    Ok((engine, Allocator::OnDemand { reason }))
}

/// Builds components from the engine's own WIT (bodies are `unreachable`,
/// never run), one per world, and reads the function types the engine
/// provides and calls.
fn build_reference(engine: &wasmtime::Engine) -> Result<Reference, EngineError> {
    let ips = reference_component(engine, "ips-module")?;
    let av = reference_component(engine, "av-module")?;
    let flat = reference_component(engine, "flat-ips-module")?;
    Reference::from_components(engine, &ips, &av, &flat).map_err(EngineError::Reference)
}

fn reference_component(engine: &wasmtime::Engine, world: &str) -> Result<Component, EngineError> {
    let err = |what: &str, e: &dyn std::fmt::Display| {
        EngineError::Reference(format!("world {world}: {what}: {e:#}"))
    };
    let mut resolve = Resolve::default();
    let pkg = resolve
        .push_str("pattern.wit", WIT_1_2_0)
        .map_err(|e| err("parsing WIT", &e))?;
    let world = resolve
        .select_world(&[pkg], Some(world))
        .map_err(|e| err("selecting world", &e))?;
    let mut core = wit_component::dummy_module(&resolve, world, ManglingAndAbi::Standard32);
    wit_component::embed_component_metadata(&mut core, &resolve, world, StringEncoding::UTF8)
        .map_err(|e| err("embedding world", &e))?;
    let bytes = ComponentEncoder::default()
        .module(&core)
        .and_then(|enc| enc.validate(true).encode())
        .map_err(|e| err("encoding", &e))?;
    Component::new(engine, &bytes).map_err(|e| err("compiling", &e))
}

/// Classifies a failed wasmtime call: the limiter's record first (a refused
/// growth surfaces as a plain error), then wasmtime's trap codes. An error
/// that is not a trap comes from the canonical ABI refusing what the module
/// handed over (bad pointer, invalid UTF-8, unknown enum case): bad output.
pub(crate) fn classify(err: &wasmtime::Error, state: &HostState) -> (FaultKind, String) {
    if let Some(hit) = &state.limiter.hit {
        return (FaultKind::MemoryLimit, hit.clone());
    }
    let Some(trap) = err.downcast_ref::<wasmtime::Trap>() else {
        return (FaultKind::BadOutput, format!("{err:#}"));
    };
    let kind = match trap {
        wasmtime::Trap::OutOfFuel => FaultKind::FuelExhausted,
        // The epoch deadline: the same budget, metered in time.
        wasmtime::Trap::Interrupt => FaultKind::FuelExhausted,
        wasmtime::Trap::StackOverflow => FaultKind::StackOverflow,
        _ => FaultKind::Trap,
    };
    // The trap plus the innermost frame; a full backtrace of a stack
    // overflow runs to thousands of lines.
    let place = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .and_then(|bt| bt.frames().first())
        .map(|frame| {
            let name = frame.func_name().map_or_else(
                || format!("function {}", frame.func_index()),
                |n| format!("`{n}`"),
            );
            match frame.module_offset() {
                Some(offset) => format!(" in {name} at offset {offset:#x}"),
                None => format!(" in {name}"),
            }
        })
        .unwrap_or_default();
    (kind, format!("{trap}{place}"))
}
