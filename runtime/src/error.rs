//! Typed errors: why a module was refused ([`LoadError`]), why a call failed
//! ([`Fault`]), why the engine could not start ([`EngineError`]).

use std::fmt;
use std::sync::Arc;

use crate::version::{InterfaceVersion, VersionList};

/// The engine could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration value is unusable.
    #[error("engine config: `{field}` {reason}")]
    Config {
        /// The offending field, dotted (`limits.memory_max_bytes`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// wasmtime refused the configuration even without the pool.
    #[error("engine config: wasmtime refused it: {0}")]
    Wasmtime(String),
    /// The reference component built from the engine's own WIT failed; a
    /// build defect, never caused by content.
    #[error("engine: cannot build the reference component for the export check: {0}")]
    Reference(String),
}

/// Whether a name is something a module imports or exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    /// The module asks the engine for it.
    Import,
    /// The module provides it to the engine.
    Export,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Import => "import",
            ItemKind::Export => "export",
        })
    }
}

/// Why a module was refused at load time. Every message starts with
/// `module NAME:` and names the import or export, the version wanted and the
/// versions the engine offers, so an operator can act on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Step 1: bigger than `limits.max_module_bytes`.
    #[error("module {module}: is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The module's name as the host gave it.
        module: String,
        /// Its size in bytes.
        size: u64,
        /// The configured limit.
        max: u64,
    },
    /// Step 2: a core wasm module where a component is required.
    #[error("module {module}: is a core wasm module, not a component")]
    CoreModule {
        /// The module's name.
        module: String,
    },
    /// Step 2: not parseable as a component (truncated, corrupted, duplicate
    /// manifest).
    #[error("module {module}: is not a well-formed component: {detail}")]
    Malformed {
        /// The module's name.
        module: String,
        /// The parser's complaint, with the byte offset.
        detail: String,
    },
    /// Step 3: a `sandgate:pattern` name without a usable version.
    #[error(
        "module {module}: {direction} `{name}` has no MAJOR.MINOR.PATCH version \
         (engine offers {})",
        VersionList(offered)
    )]
    Unversioned {
        /// The module's name.
        module: String,
        /// Import or export.
        direction: ItemKind,
        /// The name as written in the component.
        name: String,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
    },
    /// Step 3: built for a major version the engine does not implement.
    #[error(
        "module {module}: {direction} `{name}` needs interface {wanted}, a major version \
         this engine does not implement (engine offers {})",
        VersionList(offered)
    )]
    MajorVersion {
        /// The module's name.
        module: String,
        /// Import or export.
        direction: ItemKind,
        /// The import/export name, e.g. `sandgate:pattern/log@2.0.0`.
        name: String,
        /// The version in that name.
        wanted: InterfaceVersion,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
    },
    /// Step 3: imports a newer minor than the engine implements.
    #[error(
        "module {module}: import `{import}` needs interface {wanted}, newer than this \
         engine implements (engine offers {})",
        VersionList(offered)
    )]
    MinorVersion {
        /// The module's name.
        module: String,
        /// The import name.
        import: String,
        /// The version in that name.
        wanted: InterfaceVersion,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
    },
    /// Step 4: imports something outside `sandgate:pattern/*` (WASI, ...).
    #[error(
        "module {module}: import `{import}` is not provided: this engine provides only \
         `sandgate:pattern/*` (engine offers {})",
        VersionList(offered)
    )]
    ForbiddenImport {
        /// The module's name.
        module: String,
        /// The import name.
        import: String,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
    },
    /// wasmtime could not compile the component (invalid wasm).
    #[error("module {module}: does not compile: {detail}")]
    Compile {
        /// The module's name.
        module: String,
        /// wasmtime's message.
        detail: String,
    },
    /// Step 5: the linker cannot satisfy an import (e.g. a function this
    /// engine lacks, or one with a different type).
    #[error(
        "module {module}: import `{import}` cannot be satisfied: {detail} (engine offers {})",
        VersionList(offered)
    )]
    Link {
        /// The module's name.
        module: String,
        /// The import that failed.
        import: String,
        /// The version in that name, when it has one.
        wanted: Option<InterfaceVersion>,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
        /// Which function is missing or mistyped.
        detail: String,
    },
    /// Step 6: does not export an interface the engine calls.
    #[error(
        "module {module}: does not export `{export}` (engine offers {})",
        VersionList(offered)
    )]
    MissingExport {
        /// The module's name.
        module: String,
        /// The unversioned interface, e.g. `sandgate:pattern/inspector`.
        export: String,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
    },
    /// Step 3: its only engine-called export is an interface added in a
    /// minor this engine does not implement (an AV module's `scanner` on a
    /// 1.0-only engine).
    #[error(
        "module {module}: export `{export}` is an interface added in {since}, which this \
         engine does not implement (engine offers {})",
        VersionList(offered)
    )]
    NewerExport {
        /// The module's name.
        module: String,
        /// The export name, e.g. `sandgate:pattern/scanner@1.1.0`.
        export: String,
        /// The version that added the interface.
        since: InterfaceVersion,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
    },
    /// Step 6: exports it with a type the engine cannot call.
    #[error(
        "module {module}: export `{export}` has the wrong type: {detail} (engine offers {})",
        VersionList(offered)
    )]
    ExportType {
        /// The module's name.
        module: String,
        /// The export name as the module wrote it.
        export: String,
        /// Versions the engine implements.
        offered: Vec<InterfaceVersion>,
        /// Which function or field differs.
        detail: String,
    },
    /// Instantiation failed (start function trapped, memory over the cap,
    /// pool exhausted).
    #[error("module {module}: cannot be instantiated ({kind}): {detail}")]
    Instantiate {
        /// The module's name.
        module: String,
        /// What went wrong.
        kind: FaultKind,
        /// wasmtime's message.
        detail: String,
    },
    /// `describe` trapped, ran out of fuel, or returned garbage.
    #[error("module {module}: `describe` failed ({kind}): {detail}")]
    Describe {
        /// The module's name.
        module: String,
        /// What went wrong.
        kind: FaultKind,
        /// The detail, naming the field when the output was bad.
        detail: String,
    },
}

impl LoadError {
    /// The module the error is about.
    pub fn module(&self) -> &str {
        match self {
            LoadError::TooLarge { module, .. }
            | LoadError::CoreModule { module }
            | LoadError::Malformed { module, .. }
            | LoadError::Unversioned { module, .. }
            | LoadError::MajorVersion { module, .. }
            | LoadError::MinorVersion { module, .. }
            | LoadError::ForbiddenImport { module, .. }
            | LoadError::Compile { module, .. }
            | LoadError::Link { module, .. }
            | LoadError::MissingExport { module, .. }
            | LoadError::NewerExport { module, .. }
            | LoadError::ExportType { module, .. }
            | LoadError::Instantiate { module, .. }
            | LoadError::Describe { module, .. } => module,
        }
    }
}

/// What kind of fault a module call ended in; the host counts and maps these
/// to verdicts through the module's [`FailPolicy`](crate::FailPolicy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A wasm trap (unreachable, out-of-bounds access, bad canonical-ABI data).
    Trap,
    /// The call used its whole fuel budget.
    FuelExhausted,
    /// Linear memory or a table tried to grow past its cap.
    MemoryLimit,
    /// The wasm stack exceeded `limits.max_wasm_stack`.
    StackOverflow,
    /// The module returned `err(message)`: it could not inspect the batch.
    ModuleError,
    /// The module returned hits naming a rule or packet that does not exist,
    /// or `describe` returned out-of-bounds data.
    BadOutput,
    /// A fresh instance could not be created (after a trap, or at start).
    Instantiate,
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultKind::Trap => "trap",
            FaultKind::FuelExhausted => "fuel exhausted",
            FaultKind::MemoryLimit => "memory limit",
            FaultKind::StackOverflow => "stack overflow",
            FaultKind::ModuleError => "module error",
            FaultKind::BadOutput => "bad output",
            FaultKind::Instantiate => "instantiation failed",
        })
    }
}

/// A module call that produced no usable verdict. The engine keeps running;
/// the host applies the module's fail policy to the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("module {module}: {kind}: {message}")]
pub struct Fault {
    /// The module that faulted.
    pub module: Arc<str>,
    /// What kind of fault.
    pub kind: FaultKind,
    /// Detail for the operator (trap message, the module's own error text,
    /// the offending hit).
    pub message: String,
}
