//! Sandgate runtime: loads detection modules (WebAssembly components behind
//! the `sandgate:pattern` WIT interface), refuses the ones this engine cannot
//! run before any of their code runs, and runs the rest under fuel, memory
//! and stack caps so a faulty module costs at most its own verdict.
//!
//! Start with [`Engine::load`], then [`ModuleInstance::inspect`] (or
//! [`ModuleInstance::inspect_app`] with application-layer buffers) for IPS
//! modules or [`ScanInstance`] for AV modules.
//!
//! | module | what lives there |
//! | --- | --- |
//! | [`config`] | [`EngineConfig`], [`Limits`], [`PoolConfig`], [`FailPolicy`], [`QuarantineConfig`]: every knob, with defaults |
//! | [`cache`] | [`ArtifactCache`]: precompiled components and their `describe` answers, keyed by the engine's compatibility hash |
//! | `described` | a `describe` answer with its load logs, and the checksummed file the cache keeps it in |
//! | [`check`] | the load-time check (size, parse, version gates, allow-list, export types) |
//! | `engine` | [`Engine`]: wasmtime engine + linker, [`Engine::load`] |
//! | `module` | [`LoadedModule`], [`FuelBudget`], [`DescribeOutcome`], the `describe` call and the bounds on its output |
//! | `meter` | [`Metering`] at work: fuel, an epoch deadline (ticker thread) or nothing per call |
//! | `instance` | [`ModuleInstance`]: `inspect`/`inspect_app`, fault classification, restart after a trap |
//! | `app` | [`AppData`]/[`AppBuffer`]/[`AppProto`]: application-layer side data of a batch (1.2.0), the flat 1.2.0 batch layout and the 1.0.0 view without transaction entries |
//! | `scan` | [`ScanInstance`]: streaming scans of an AV module (`scanner`, 1.1.0), per-feed fuel, the scan-time limit |
//! | `host` | the `log` and `flow-state` imports, the memory/table limiter |
//! | `counters` | [`FaultCounters`] per module |
//! | [`error`] | [`LoadError`], [`Fault`], [`FaultKind`], [`EngineError`] |
//! | [`version`] | [`InterfaceVersion`] and `ns:pkg/iface@ver` names |
//! | [`wit`] | the generated WIT types (1.2.0; 1.0.0/1.1.0 modules link by semver) |
//! | `testkit` | (feature `testkit`) test components from WAT, no Rust guest |
//!
//! ```no_run
//! use sandgate_runtime::{Engine, EngineConfig, wit};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::new(EngineConfig::default())?;
//! let bytes = std::fs::read("rules.wasm")?;
//! let module = engine.load("rules", &bytes)?; // refused here if incompatible
//! let mut instance = module.instantiate()?;
//! let batch = wit::Batch { buffer: b"GET /".to_vec(), packets: vec![] };
//! match instance.inspect(&batch) {
//!     Ok(hits) => println!("{} hits", hits.len()),
//!     Err(fault) => eprintln!("{fault}"), // the host applies the fail policy
//! }
//! # Ok(()) }
//! ```

mod app;
pub mod cache;
pub mod check;
pub mod config;
mod counters;
mod described;
mod engine;
pub mod error;
mod host;
mod instance;
mod meter;
mod module;
mod scan;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod version;

pub use app::{AppBuffer, AppData, AppProto, ENTRY_WORDS, FLOW_APP_TX};
pub use cache::{ArtifactCache, CacheOutcome};
pub use check::MANIFEST_SECTION;
pub use config::{
    AddressSpace, EngineConfig, FailPolicy, Limits, Metering, PoolConfig, QuarantineConfig,
};
pub use counters::{FaultCounters, FaultCounts};
pub use engine::{Allocator, Engine};
pub use error::{EngineError, Fault, FaultKind, ItemKind, LoadError};
pub use host::LogLine;
pub use instance::ModuleInstance;
pub use module::{
    DescribeOutcome, FuelBudget, LoadedModule, MAX_MSG, MAX_RULES, MAX_RULE_LIST, MAX_SHORT_STRING,
};
pub use scan::{Detection, ScanId, ScanInstance, ScanLimit, ScanOptions, ScanReport, FUEL_PER_MS};
pub use version::InterfaceVersion;

/// Rust types generated from `wit/v1.2.0` (world `ips-module`); the host
/// builds [`Batch`](wit::Batch)/[`Packet`](wit::Packet) from them and reads
/// [`ModuleInfo`](wit::ModuleInfo) and [`Hit`](wit::Hit). A module built
/// against 1.0.0 or 1.1.0 links against these 1.2.0 host functions
/// (semver-compatible names); 1.1.0 and 1.2.0 changed nothing of 1.0.0.
pub mod wit {
    wasmtime::component::bindgen!({
        world: "ips-module",
        path: "../wit/v1.2.0",
        additional_derives: [PartialEq, Eq],
    });

    pub use self::sandgate::pattern::log::Level;
    pub use self::sandgate::pattern::types::*;

    /// The `av-module` world (1.1.0): the `scanner` export. Shares the types
    /// and the `log` import with the `ips-module` bindings above.
    pub mod av {
        wasmtime::component::bindgen!({
            world: "av-module",
            path: "../wit/v1.2.0",
            additional_derives: [PartialEq, Eq],
            with: {
                "sandgate:pattern/types": crate::wit::sandgate::pattern::types,
                "sandgate:pattern/log": crate::wit::sandgate::pattern::log,
            },
        });

        pub use self::exports::sandgate::pattern::scanner::{
            Detection, ScanLimit, ScanOptions, ScanResult,
        };
    }

    /// The `flat-ips-module` world (1.2.0): the `flat-inspector` export.
    /// Shares the types and imports with the `ips-module` bindings above.
    pub mod flat {
        wasmtime::component::bindgen!({
            world: "flat-ips-module",
            path: "../wit/v1.2.0",
            additional_derives: [PartialEq, Eq],
            with: {
                "sandgate:pattern/types": crate::wit::sandgate::pattern::types,
                "sandgate:pattern/log": crate::wit::sandgate::pattern::log,
                "sandgate:pattern/flow-state": crate::wit::sandgate::pattern::flow_state,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}

    #[test]
    fn handles_cross_threads() {
        send_sync::<crate::Engine>();
        send_sync::<crate::LoadedModule>();
        send_sync::<crate::FaultCounters>();
        send::<crate::ModuleInstance>();
        send::<crate::ScanInstance>();
    }
}
