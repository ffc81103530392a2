//! From input files to a bundle: the `sandgate-patc build` pipeline.
//!
//! Files are grouped by kind — `.rules` into one IPS module (interface
//! 1.0.0), ClamAV databases (`.hdb/.hsb/.ndb/.ldb`, plus `.ign2` to disable
//! signatures by name) into one AV module (1.1.0) — and the modules are
//! packed into one [`Bundle`]. Rules and signatures that do not compile are
//! reported, never fatal; only "nothing usable" in a group is an error.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::av::{compile_databases, AvError, AvSkip, DbFile, CLAMAV_FLEVEL};
use crate::bundle::{Bundle, ModuleEntry};
use crate::compile::{compile_rules, Skipped};
use crate::emit::{av_component, flat_rules_component, rules_component, EmitError, ModuleManifest};
use crate::rules::{RuleSource, Vars};

/// The interface version IPS modules built here need (the oldest with
/// every capability rules use, so 1.0-only engines load them).
pub const INTERFACE_VERSION: &str = "1.0.0";

/// The interface version AV modules need: the `scanner` came with 1.1.0.
pub const AV_INTERFACE_VERSION: &str = "1.1.0";

/// Interface of the rules variant that carries every rule, the
/// application-layer ones (HTTP/DNS/TLS buffers) included: the 1.2.0
/// `flat-inspector`.
pub const APP_INTERFACE_VERSION: &str = "1.2.0";

/// Module id of the AV module a build produces.
pub const AV_MODULE_ID: &str = "av-signatures";

/// Extensions compiled into the AV module.
pub const AV_EXTENSIONS: [&str; 5] = ["hdb", "hsb", "ndb", "ldb", "ign2"];

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub inputs: Vec<PathBuf>,
    pub vars: Vars,
    /// Module id of the IPS module (default `ips-rules`); the AV module is
    /// always [`AV_MODULE_ID`].
    pub module_id: String,
    /// Bundle version; anti-rollback compares it. Default: creation time.
    pub bundle_version: Option<u64>,
}

/// What `build` produced and left out.
#[derive(Debug)]
pub struct BuildReport {
    pub bundle: Bundle,
    /// Rules read (0 when no `.rules` input was given).
    pub rules_total: usize,
    pub rules_compiled: usize,
    pub skipped: Vec<Skipped>,
    /// The AV module, when databases were given.
    pub av: Option<AvReport>,
    /// Per rules variant: its interface, how many rules it holds and why
    /// the compiled rules it lacks were left out.
    pub variants: Vec<VariantReport>,
}

/// What one variant of the rules module holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariantReport {
    /// Interface version (`1.0.0`, `1.2.0`).
    pub interface: String,
    /// Rules compiled into it.
    pub rules: usize,
    /// Compiled rules left out of it, grouped: (reason, count).
    pub left_out: Vec<(String, usize)>,
}

/// What went into the AV module and what was left out.
#[derive(Debug)]
pub struct AvReport {
    pub module_id: String,
    /// Signatures compiled into the module.
    pub signatures: usize,
    /// Valid signatures left out (unsupported construct, target type or
    /// functionality level), each naming database, line and construct.
    pub skipped: Vec<AvSkip>,
    /// Lines that are not valid in their database format.
    pub errors: Vec<AvError>,
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
    #[error("{path}: unknown input type (expected .rules, .hdb, .hsb, .ndb, .ldb or .ign2)")]
    UnknownInput { path: String },
    #[error("no inputs given")]
    NoInputs,
    #[error("nothing usable: all {total} rules were skipped")]
    NothingCompiled { total: usize },
    #[error("nothing usable in the signature databases: all {total} signatures were skipped")]
    NoSignatures { total: usize },
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

/// Compile `opts.inputs` into a bundle: one IPS module for the `.rules`
/// files, one AV module for the signature databases, either or both.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    if opts.inputs.is_empty() {
        return Err(BuildError::NoInputs);
    }
    let mut rule_texts = Vec::new();
    let mut db_texts = Vec::new();
    for path in &opts.inputs {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let is_db = AV_EXTENSIONS.contains(&ext.as_str());
        if ext != "rules" && !is_db {
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
        if is_db {
            db_texts.push((display(path), text));
        } else {
            rule_texts.push((display(path), text));
        }
    }
    let created = now_unix();
    let version = opts.bundle_version.unwrap_or(created);
    let mut modules = Vec::new();
    let (mut rules_total, mut rules_compiled, mut skipped) = (0, 0, Vec::new());
    let mut variants = Vec::new();
    if !rule_texts.is_empty() {
        let sources: Vec<RuleSource<'_>> = rule_texts
            .iter()
            .map(|(file, text)| RuleSource { file, text })
            .collect();
        let compiled = compile_rules(&sources, &opts.vars, &opts.module_id, &version.to_string());
        rules_compiled = compiled.set.rules.len();
        rules_total = rules_compiled + compiled.skipped.len();
        if rules_compiled == 0 {
            return Err(BuildError::NothingCompiled { total: rules_total });
        }
        let emit_err = |source| BuildError::Emit {
            id: opts.module_id.clone(),
            source,
        };
        let (packet_set, left_out) = without_app_rules(&compiled.set);
        // The 1.0.0 variant: every rule that needs no application layer.
        if !packet_set.rules.is_empty() {
            let content = packet_set
                .to_bytes()
                .map_err(|e| emit_err(EmitError::Serialize(e.to_string())))?;
            let manifest = manifest(
                &opts.module_id,
                version,
                "ips",
                INTERFACE_VERSION,
                packet_set.rules.len(),
                &content,
            );
            let component = rules_component(&packet_set, &manifest).map_err(emit_err)?;
            modules.push((entry(&manifest), component));
        }
        variants.push(VariantReport {
            interface: INTERFACE_VERSION.into(),
            rules: packet_set.rules.len(),
            left_out: if left_out == 0 {
                Vec::new()
            } else {
                vec![(
                    "needs application-layer buffers or an app protocol (interface 1.2.0)".into(),
                    left_out,
                )]
            },
        });
        // The 1.2.0 variant: every rule, on the flat batch.
        let content = compiled
            .set
            .to_bytes()
            .map_err(|e| emit_err(EmitError::Serialize(e.to_string())))?;
        let manifest = manifest(
            &opts.module_id,
            version,
            "ips",
            APP_INTERFACE_VERSION,
            rules_compiled,
            &content,
        );
        let component = flat_rules_component(&compiled.set, &manifest).map_err(emit_err)?;
        modules.push((entry(&manifest), component));
        variants.push(VariantReport {
            interface: APP_INTERFACE_VERSION.into(),
            rules: rules_compiled,
            left_out: Vec::new(),
        });
        skipped = compiled.skipped;
    }
    let mut av = None;
    if !db_texts.is_empty() {
        let files: Vec<DbFile<'_>> = db_texts
            .iter()
            .map(|(name, text)| DbFile { name, text })
            .collect();
        let out = compile_databases(&files, CLAMAV_FLEVEL);
        let signatures = out.db.len();
        if signatures == 0 {
            return Err(BuildError::NoSignatures {
                total: out.skipped.len() + out.errors.len(),
            });
        }
        let content = out.db.to_bytes();
        let manifest = manifest(
            AV_MODULE_ID,
            version,
            "av",
            AV_INTERFACE_VERSION,
            signatures,
            &content,
        );
        let component = av_component(&out.db, &manifest).map_err(|source| BuildError::Emit {
            id: AV_MODULE_ID.to_string(),
            source,
        })?;
        modules.push((entry(&manifest), component));
        av = Some(AvReport {
            module_id: AV_MODULE_ID.to_string(),
            signatures,
            skipped: out.skipped,
            errors: out.errors,
        });
    }
    Ok(BuildReport {
        bundle: Bundle::new(version, created, modules),
        rules_total,
        rules_compiled,
        skipped,
        av,
        variants,
    })
}

/// The rule set without its application-layer rules (for the 1.0.0
/// variant), and how many were left out. Flowbit numbering is kept, so both
/// variants store the same per-flow state.
pub fn without_app_rules(set: &sandgate_matcher::RuleSet) -> (sandgate_matcher::RuleSet, usize) {
    let mut out = set.clone();
    out.rules.retain(|r| !r.is_app());
    let left_out = set.rules.len() - out.rules.len();
    (out, left_out)
}

fn manifest(
    id: &str,
    version: u64,
    kind: &str,
    interface: &str,
    rules: usize,
    content: &[u8],
) -> ModuleManifest {
    ModuleManifest {
        name: id.to_string(),
        version: version.to_string(),
        kind: kind.into(),
        interface: interface.into(),
        rules: u32::try_from(rules).unwrap_or(u32::MAX),
        content_sha256: crate::bundle::sha256_hex(content),
    }
}

fn entry(m: &ModuleManifest) -> ModuleEntry {
    ModuleEntry {
        id: m.name.clone(),
        version: m.version.clone(),
        kind: m.kind.clone(),
        interface: m.interface.clone(),
        rules: m.rules,
        sha256: String::new(),
        offset: 0,
        len: 0,
    }
}
