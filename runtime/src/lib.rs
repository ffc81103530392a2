//! Sandgate runtime: loads detection modules (WebAssembly components behind
//! the `sandgate:pattern` WIT interface), refuses the ones this engine cannot
//! run before any of their code runs, and runs the rest under fuel, memory
//! and stack caps so a faulty module costs at most its own verdict.
//!
//! Start with [`Engine::load`] and [`ModuleInstance::inspect`].
//!
//! | module | what lives there |
//! | --- | --- |
//! | [`config`] | [`EngineConfig`], [`Limits`], [`PoolConfig`], [`FailPolicy`], [`QuarantineConfig`]: every knob, with defaults |
//! | [`cache`] | [`ArtifactCache`]: precompiled components keyed by the engine's compatibility hash |
//! | [`check`] | the load-time check (size, parse, version gates, allow-list, export types) |
//! | `engine` | [`Engine`]: wasmtime engine + linker, [`Engine::load`] |
//! | `module` | [`LoadedModule`], [`FuelBudget`], bounds on `describe` output |
//! | `instance` | [`ModuleInstance`]: `inspect`, fault classification, restart after a trap |
//! | `host` | the `log` and `flow-state` imports, the memory/table limiter |
//! | `counters` | [`FaultCounters`] per module |
//! | [`error`] | [`LoadError`], [`Fault`], [`FaultKind`], [`EngineError`] |
//! | [`version`] | [`InterfaceVersion`] and `ns:pkg/iface@ver` names |
//! | [`wit`] | the generated WIT types the host builds batches from |
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

pub mod cache;
pub mod check;
pub mod config;
mod counters;
mod engine;
pub mod error;
mod host;
mod instance;
mod module;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod version;

pub use cache::{ArtifactCache, CacheOutcome};
pub use check::MANIFEST_SECTION;
pub use config::{EngineConfig, FailPolicy, Limits, PoolConfig, QuarantineConfig};
pub use counters::{FaultCounters, FaultCounts};
pub use engine::{Allocator, Engine};
pub use error::{EngineError, Fault, FaultKind, ItemKind, LoadError};
pub use host::LogLine;
pub use instance::ModuleInstance;
pub use module::{FuelBudget, LoadedModule, MAX_MSG, MAX_RULES, MAX_RULE_LIST, MAX_SHORT_STRING};
pub use version::InterfaceVersion;

/// Rust types generated from `wit/v1.0.0` (world `ips-module`); the host
/// builds [`Batch`](wit::Batch)/[`Packet`](wit::Packet) from them and reads
/// [`ModuleInfo`](wit::ModuleInfo) and [`Hit`](wit::Hit).
pub mod wit {
    wasmtime::component::bindgen!({
        world: "ips-module",
        path: "../wit/v1.0.0",
        additional_derives: [PartialEq, Eq],
    });

    pub use self::sandgate::pattern::log::Level;
    pub use self::sandgate::pattern::types::*;
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
    }
}
