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
use crate::compile::{compile_rules_with, CompileProgress, Skipped};
use crate::emit::{
    av_component, flat_rules_component_from_data, rule_data, rules_component_from_data, EmitError,
    ModuleManifest,
};
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

/// Progress of [`build_with_progress`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildProgress {
    /// Rules parsed and lowered.
    Rules(CompileProgress),
    /// Compiling the signature databases.
    Signatures,
    /// Encoding module `id` as a component.
    Encoding { module: String },
}

/// Compile `opts.inputs` into a bundle: one IPS module for the `.rules`
/// files, one AV module for the signature databases, either or both.
pub fn build(opts: &BuildOptions) -> Result<BuildReport, BuildError> {
    build_with_progress(opts, &mut |_| {})
}

/// [`build`], reporting progress to `progress` (for a progress bar).
pub fn build_with_progress(
    opts: &BuildOptions,
    progress: &mut dyn FnMut(BuildProgress),
) -> Result<BuildReport, BuildError> {
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
        let compiled = compile_rules_with(
            &sources,
            &opts.vars,
            &opts.module_id,
            &version.to_string(),
            &mut |p| progress(BuildProgress::Rules(p)),
        );
        rules_compiled = compiled.set.rules.len();
        rules_total = rules_compiled + compiled.skipped.len();
        if rules_compiled == 0 {
            return Err(BuildError::NothingCompiled { total: rules_total });
        }
        progress(BuildProgress::Encoding {
            module: opts.module_id.clone(),
        });
        let (packet_set, left_out) = without_app_rules(&compiled.set);
        let variant = |set: &sandgate_matcher::RuleSet, interface: &str, flat: bool| {
            rules_variant(set, &opts.module_id, version, interface, flat)
        };
        // The two variants are independent: encode them side by side.
        let (packet_module, app_module) = std::thread::scope(|scope| {
            // The 1.0.0 variant: every rule that needs no application layer.
            let packet = scope.spawn(|| {
                (!packet_set.rules.is_empty())
                    .then(|| variant(&packet_set, INTERFACE_VERSION, false))
                    .transpose()
            });
            // The 1.2.0 variant: every rule, on the flat batch.
            let app = variant(&compiled.set, APP_INTERFACE_VERSION, true);
            let packet = packet
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (packet, app)
        });
        modules.extend(packet_module?);
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
        modules.push(app_module?);
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
        progress(BuildProgress::Signatures);
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
        progress(BuildProgress::Encoding {
            module: AV_MODULE_ID.to_string(),
        });
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
    let out = sandgate_matcher::RuleSet {
        format: set.format,
        name: set.name.clone(),
        version: set.version.clone(),
        rules: set.rules.iter().filter(|r| !r.is_app()).cloned().collect(),
        flowbits: set.flowbits.clone(),
    };
    let left_out = set.rules.len() - out.rules.len();
    (out, left_out)
}

/// One variant of the rules module: `set` serialised once, hashed into the
/// manifest and embedded into the 1.0.0 guest or (`flat`) the 1.2.0 one.
fn rules_variant(
    set: &sandgate_matcher::RuleSet,
    id: &str,
    version: u64,
    interface: &str,
    flat: bool,
) -> Result<(ModuleEntry, Vec<u8>), BuildError> {
    let emit_err = |source| BuildError::Emit {
        id: id.to_string(),
        source,
    };
    let content = rule_data(set).map_err(emit_err)?;
    let manifest = manifest(id, version, "ips", interface, set.rules.len(), &content);
    let component = if flat {
        flat_rules_component_from_data(&content, &manifest)
    } else {
        rules_component_from_data(&content, &manifest)
    }
    .map_err(emit_err)?;
    Ok((entry(&manifest), component))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn building_the_same_rules_twice_gives_identical_modules() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/rules/et-open-2020");
        let inputs: Vec<PathBuf> = [
            "emerging-netbios.rules",
            "emerging-web_client.rules",
            "emerging-imap.rules",
        ]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
        if inputs.len() < 3 {
            println!("skip: ET Open 2020 rules not found in {}", dir.display());
            return;
        }
        let opts = BuildOptions {
            inputs,
            vars: Vars::suricata_defaults(),
            module_id: "ips-rules".into(),
            bundle_version: Some(7),
        };
        let (a, b) = match (build(&opts), build(&opts)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => panic!("build failed: {:?} / {:?}", a.err(), b.err()),
        };
        let ids = |r: &BuildReport| -> Vec<(String, String, u32)> {
            r.bundle
                .manifest
                .modules
                .iter()
                .map(|m| (m.id.clone(), m.interface.clone(), m.rules))
                .collect()
        };
        assert_eq!(ids(&a).len(), 2, "{:?}", ids(&a));
        assert_eq!(ids(&a), ids(&b));
        assert_eq!(a.variants, b.variants);
        assert_eq!(a.skipped, b.skipped);
        for (i, (ma, mb)) in a.bundle.modules.iter().zip(&b.bundle.modules).enumerate() {
            assert!(ma == mb, "module {i} differs between two builds");
        }
        // The 1.0.0 variant holds only rules without application-layer
        // needs; the 1.2.0 one all of them.
        assert!(a.variants[0].rules < a.variants[1].rules);
        assert_eq!(a.variants[1].rules, a.rules_compiled);
    }
}
