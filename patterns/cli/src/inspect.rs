//! `sandgate-patc inspect`: what a module is and which engines take it.
//!
//! For a component, or for every variant of a bundle: the interface
//! versions it targets, its top-level imports and exports (read by the
//! runtime's own load-time [`check::scan`], so this tool and the engine
//! agree on what a module declares), its size and SHA-256, its manifest,
//! the rules it declares and its fuel estimates (from `describe`, run in a
//! limited runtime), and for every field engine whether that engine loads
//! it — the real load check with that engine's interface set — and if not,
//! why.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use sandgate_patterns::bundle::{sha256_hex, Bundle, BUNDLE_MAGIC};
use sandgate_patterns::field::FieldList;
use sandgate_runtime::check;
use sandgate_runtime::wit::{Action, ModuleKind};
use sandgate_runtime::{Engine, EngineConfig, InterfaceVersion, Limits, LoadedModule};
use serde_json::{json, Value};

/// Rules listed before "... and N more" unless `--rules` is given.
pub const FIRST_RULES: usize = 10;

/// Arguments of `inspect`.
pub struct Args<'a> {
    pub path: &'a Path,
    /// The field list; `None` leaves the engine table out.
    pub field: Option<&'a FieldList>,
    /// List every rule, not only the first [`FIRST_RULES`].
    pub all_rules: bool,
}

/// One inspected component.
struct Report {
    label: String,
    size: usize,
    sha256: String,
    versions: Vec<String>,
    imports: Vec<String>,
    exports: Vec<String>,
    manifest: Option<Value>,
    described: Result<Described, String>,
    engines: Vec<(String, String, Result<(), String>)>,
}

/// What `describe` returned, as the engine's load saw it.
struct Described {
    name: String,
    version: String,
    kind: &'static str,
    /// gid, sid, rev, action, msg.
    rules: Vec<(u32, u32, u32, &'static str, String)>,
    fuel_per_packet: u64,
    fuel_per_byte: u64,
}

/// Inspect `args.path` and return the text (or JSON) to print.
pub fn run(args: &Args<'_>, as_json: bool) -> anyhow::Result<String> {
    let name = args.path.display().to_string();
    let bytes = std::fs::read(args.path).with_context(|| format!("reading {name}"))?;
    let mut reports = Vec::new();
    let mut header = None;
    let mut bundle_json = Value::Null;
    if bytes.starts_with(BUNDLE_MAGIC) {
        let bundle = Bundle::from_bytes(&bytes, &name)?;
        bundle_json = json!({
            "version": bundle.manifest.version,
            "variants": bundle.manifest.modules.len(),
            "signed": bundle.signature.is_some(),
        });
        header = Some(format!(
            "bundle {name}: version {}, {} module variant(s){}",
            bundle.manifest.version,
            bundle.manifest.modules.len(),
            if bundle.signature.is_some() {
                ", signed"
            } else {
                ", unsigned"
            }
        ));
        for (entry, module) in bundle.manifest.modules.iter().zip(&bundle.modules) {
            let label = format!("`{}` (interface {}) in {name}", entry.id, entry.interface);
            reports.push(inspect_component(&label, module, args.field)?);
        }
    } else {
        reports.push(inspect_component(&name, &bytes, args.field)?);
    }
    if as_json {
        let modules: Vec<Value> = reports.iter().map(Report::json).collect();
        let out = json!({ "file": name, "bundle": bundle_json, "modules": modules });
        return Ok(format!("{}\n", serde_json::to_string_pretty(&out)?));
    }
    let mut out = String::new();
    if let Some(h) = header {
        out.push_str(&h);
        out.push('\n');
    }
    for (i, r) in reports.iter().enumerate() {
        if i > 0 || !out.is_empty() {
            out.push('\n');
        }
        r.text(args.all_rules, &mut out);
    }
    Ok(out)
}

/// Every interface version the runtime implements: `describe` runs in an
/// engine offering all of them, so any module it could load is described.
fn describing_engine() -> anyhow::Result<Engine> {
    Engine::new(EngineConfig::default()).context("starting a runtime to describe the module")
}

fn inspect_component(
    label: &str,
    bytes: &[u8],
    field: Option<&FieldList>,
) -> anyhow::Result<Report> {
    if !bytes.starts_with(b"\0asm") {
        anyhow::bail!("{label}: not a wasm component or a Sandgate bundle");
    }
    // A corrupt component or a core module is refused here, before any engine.
    let inventory = check::scan(label, bytes, &Limits::default())
        .with_context(|| format!("{label}: not a Sandgate module"))?;
    let versions: BTreeSet<String> = inventory
        .imports
        .iter()
        .chain(&inventory.exports)
        .filter(|n| n.starts_with("sandgate:pattern/"))
        .filter_map(|n| n.rsplit_once('@').map(|(_, v)| v.to_string()))
        .collect();
    let manifest = inventory.manifest.as_deref().map(|m| {
        serde_json::from_slice::<Value>(m).unwrap_or_else(|e| json!({ "invalid": e.to_string() }))
    });
    let described = match describing_engine()?.load(label, bytes) {
        Ok(m) => Ok(describe(&m)),
        Err(e) => Err(e.to_string()),
    };
    let mut engines = Vec::new();
    if let Some(field) = field {
        for fe in &field.engines {
            let verdict = accepts(&fe.interfaces, label, bytes);
            engines.push((fe.label(), fe.interfaces.join(","), verdict));
        }
    }
    Ok(Report {
        label: label.to_string(),
        size: bytes.len(),
        sha256: sha256_hex(bytes),
        versions: versions.into_iter().collect(),
        imports: inventory.imports,
        exports: inventory.exports,
        manifest,
        described,
        engines,
    })
}

/// The real load check of an engine offering `interfaces` (as `matrix`
/// configures each field engine).
fn accepts(interfaces: &[String], label: &str, bytes: &[u8]) -> Result<(), String> {
    let offered = interfaces
        .iter()
        .map(|v| v.parse::<InterfaceVersion>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the field list's interface set is invalid: {e}"))?;
    let engine = Engine::new(EngineConfig {
        interfaces: offered,
        ..EngineConfig::default()
    })
    .map_err(|e| format!("engine cannot be configured: {e}"))?;
    engine
        .load(label, bytes)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn describe(m: &LoadedModule) -> Described {
    let info = m.info();
    Described {
        name: info.name.clone(),
        version: info.version.clone(),
        kind: match info.kind {
            ModuleKind::Ips => "ips",
            ModuleKind::Av => "av",
        },
        rules: info
            .rules
            .iter()
            .map(|r| {
                let action = match r.action {
                    Action::Alert => "alert",
                    Action::Drop => "drop",
                    Action::Reject => "reject",
                    Action::Pass => "pass",
                };
                (r.gid, r.sid, r.rev, action, r.msg.clone())
            })
            .collect(),
        fuel_per_packet: info.fuel_per_packet,
        fuel_per_byte: info.fuel_per_byte,
    }
}

impl Report {
    fn text(&self, all_rules: bool, out: &mut String) {
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!("module {}", self.label));
        line(format!("  size        {} bytes", self.size));
        line(format!("  sha256      {}", self.sha256));
        line(format!("  interface   {}", self.versions.join(", ")));
        if let Some(m) = &self.manifest {
            line(format!("  manifest    {}", compact(m)));
        }
        line(format!("  imports     ({})", self.imports.len()));
        for i in &self.imports {
            line(format!("    {i}"));
        }
        line(format!("  exports     ({})", self.exports.len()));
        for e in &self.exports {
            line(format!("    {e}"));
        }
        match &self.described {
            Err(e) => line(format!("  describe    failed: {e}")),
            Ok(d) => {
                line(format!(
                    "  describe    {} {} ({}), {} rule(s)",
                    d.name,
                    d.version,
                    d.kind,
                    d.rules.len()
                ));
                line(format!(
                    "  fuel        {} per packet, {} per byte (module's estimate)",
                    d.fuel_per_packet, d.fuel_per_byte
                ));
                let shown = if all_rules {
                    d.rules.len()
                } else {
                    FIRST_RULES.min(d.rules.len())
                };
                for (gid, sid, rev, action, msg) in d.rules.iter().take(shown) {
                    line(format!("    {gid}:{sid}:{rev}  {action:<6}  {msg}"));
                }
                if shown < d.rules.len() {
                    line(format!(
                        "    ... and {} more (--rules lists all)",
                        d.rules.len() - shown
                    ));
                }
            }
        }
        if !self.engines.is_empty() {
            line("  field engines".to_string());
            for (label, interfaces, verdict) in &self.engines {
                let v = match verdict {
                    Ok(()) => "accepts".to_string(),
                    Err(why) => format!("refuses: {why}"),
                };
                line(format!("    {label} [{interfaces}]: {v}"));
            }
        }
    }

    fn json(&self) -> Value {
        let described = match &self.described {
            Err(e) => json!({ "error": e }),
            Ok(d) => json!({
                "name": d.name,
                "version": d.version,
                "kind": d.kind,
                "fuel_per_packet": d.fuel_per_packet,
                "fuel_per_byte": d.fuel_per_byte,
                "rules": d.rules.iter().map(|(gid, sid, rev, action, msg)| json!({
                    "gid": gid, "sid": sid, "rev": rev, "action": action, "msg": msg,
                })).collect::<Vec<_>>(),
            }),
        };
        let engines: Vec<Value> = self
            .engines
            .iter()
            .map(|(label, interfaces, verdict)| {
                json!({
                    "engine": label,
                    "interfaces": interfaces,
                    "accepts": verdict.is_ok(),
                    "reason": verdict.as_ref().err(),
                })
            })
            .collect();
        json!({
            "module": self.label,
            "size": self.size,
            "sha256": self.sha256,
            "interfaces": self.versions,
            "imports": self.imports,
            "exports": self.exports,
            "manifest": self.manifest,
            "describe": described,
            "field_engines": engines,
        })
    }
}

/// `key=value` pairs of a JSON object on one line.
fn compact(v: &Value) -> String {
    match v {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}
