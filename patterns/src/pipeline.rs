//! From input files to a bundle: the `sandgate-patc build` pipeline.
//!
//! Files are grouped by kind (`.rules` today; signature databases in a later
//! format), each group is compiled into one module, and the modules are
//! packed into a [`Bundle`]. Rules that do not compile are reported, never
//! fatal; only "nothing usable at all" is an error.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::bundle::{Bundle, ModuleEntry};
use crate::compile::{compile_rules, Skipped};
use crate::emit::{rules_component, EmitError, ModuleManifest};
use crate::rules::{RuleSource, Vars};

/// The interface version modules built here need.
pub const INTERFACE_VERSION: &str = "1.0.0";

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub inputs: Vec<PathBuf>,
    pub vars: Vars,
    /// Module id (default `ips-rules`).
    pub module_id: String,
    /// Bundle version; anti-rollback compares it. Default: creation time.
    pub bundle_version: Option<u64>,
}

/// What `build` produced and left out.
#[derive(Debug)]
pub struct BuildReport {
    pub bundle: Bundle,
    pub rules_total: usize,
    pub rules_compiled: usize,
    pub skipped: Vec<Skipped>,
}

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not UTF-8 text")]
    NotText { path: String },
    #[error("{path}: unknown input type (expected .rules)")]
    UnknownInput { path: String },
    #[error("no inputs given")]
    NoInputs,
    #[error("nothing usable: all {total} rules were skipped")]
    NothingCompiled { total: usize },
    #[error("module `{id}`: {source}")]
    Emit { id: String, source: EmitError },
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// Compile `opts.inputs` into a bundle.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    if opts.inputs.is_empty() {
        return Err(BuildError::NoInputs);
    }
    let mut texts = Vec::new();
    for path in &opts.inputs {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if ext != "rules" {
            return Err(BuildError::UnknownInput {
                path: display(path),
            });
        }
        let bytes = std::fs::read(path).map_err(|source| BuildError::Read {
            path: display(path),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| BuildError::NotText {
            path: display(path),
        })?;
        texts.push((display(path), text));
    }
    let sources: Vec<RuleSource<'_>> = texts
        .iter()
        .map(|(file, text)| RuleSource { file, text })
        .collect();
    let created = now_unix();
    let version = opts.bundle_version.unwrap_or(created);
    let compiled = compile_rules(&sources, &opts.vars, &opts.module_id, &version.to_string());
    let rules_compiled = compiled.set.rules.len();
    let rules_total = rules_compiled + compiled.skipped.len();
    if rules_compiled == 0 {
        return Err(BuildError::NothingCompiled { total: rules_total });
    }
    let content = compiled.set.to_bytes().map_err(|e| BuildError::Emit {
        id: opts.module_id.clone(),
        source: EmitError::Serialize(e.to_string()),
    })?;
    let manifest = ModuleManifest {
        name: opts.module_id.clone(),
        version: version.to_string(),
        kind: "ips".into(),
        interface: INTERFACE_VERSION.into(),
        rules: rules_compiled as u32,
        content_sha256: crate::bundle::sha256_hex(&content),
    };
    let component =
        rules_component(&compiled.set, &manifest).map_err(|source| BuildError::Emit {
            id: opts.module_id.clone(),
            source,
        })?;
    let entry = ModuleEntry {
        id: opts.module_id.clone(),
        version: version.to_string(),
        kind: "ips".into(),
        interface: INTERFACE_VERSION.into(),
        rules: rules_compiled as u32,
        sha256: String::new(),
        offset: 0,
        len: 0,
    };
    Ok(BuildReport {
        bundle: Bundle::new(version, created, vec![(entry, component)]),
        rules_total,
        rules_compiled,
        skipped: compiled.skipped,
    })
}
