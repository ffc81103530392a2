//! Shared helpers for the end-to-end tests in `tests/tests/`: paths to the
//! bundled examples and the shared data, building bundles from rule text,
//! and replaying captures into a list of alerts.
//!
//! The tests themselves are grouped by the guarantee they prove:
//! `foundation.rs` (rules → component → alerts; refused and faulting modules),
//! `hostile.rs` (the hostile-module corpus of [`hostile`]: containment,
//! quarantine, rollback, memory after faults),
//! `wit_frozen.rs` (released interfaces never change),
//! `updates.rs` (the appliance's update daemon against the loopback
//! [`update_server`]: refused bundles, per-module activation, rollback,
//! crashes mid-activation),
//! `live.rs` (the live data plane on veth pairs in network namespaces built
//! by [`netns`]: real TCP/HTTP/UDP through the inline bridge),
//! `suricata_verify.rs` (the suricata-verify subset in `../shared/data`, read
//! and judged by [`verify`]; writes `CONFORMANCE.md`),
//! `clamav_parity.rs` (AV detections identical to `clamscan`, helpers in
//! [`clamav`]),
//! `av_scan.rs` (`sandgate scan` and AV modules on streams),
//! `sdk.rs` (the SDK's example modules built from source, `patc new`/
//! `module build`/`test`/`inspect`, the author's guide walk-through).

pub mod clamav;
pub mod hostile;
pub mod netns;
pub mod update_server;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sandgate_host::eve::AlertRecord;
use sandgate_host::replay::{replay, Inspected, ReplayOptions, ReplayStats};
use sandgate_patterns::bundle::Bundle;
use sandgate_patterns::pipeline::{build, BuildOptions, BuildReport};
use sandgate_patterns::rules::Vars;
use sandgate_runtime::{Engine, EngineConfig, LoadedModule};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `../shared/data` beside the clone, when present (CI has it).
pub fn shared_data() -> Option<PathBuf> {
    let p = repo_root().join("../shared/data");
    p.is_dir().then_some(p)
}

pub fn example_rules() -> PathBuf {
    repo_root().join("patterns/examples/example.rules")
}

pub fn example_pcap() -> PathBuf {
    repo_root().join("patterns/examples/example.pcap")
}

/// Compile rule files into a bundle in memory.
pub fn build_bundle(inputs: &[PathBuf]) -> anyhow::Result<BuildReport> {
    Ok(build(&BuildOptions {
        inputs: inputs.to_vec(),
        vars: Vars::suricata_defaults(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })?)
}

/// Compile rule text (written to a temp file) into a bundle.
pub fn build_rules_text(text: &str) -> anyhow::Result<BuildReport> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("test.rules");
    std::fs::write(&path, text)?;
    build_bundle(&[path])
}

/// Load every module of a bundle, each in the variant the engine serves
/// (the newest interface it offers, as the host does: loading two variants
/// of one module would alert twice); any refusal fails, and so does a module
/// with no variant the engine offers.
pub fn load_all(engine: &Engine, bundle: &Bundle) -> anyhow::Result<Vec<LoadedModule>> {
    let offered: Vec<String> = engine
        .config()
        .interfaces
        .iter()
        .map(ToString::to_string)
        .collect();
    let selection = bundle.select(&offered);
    if let Some((id, needs)) = selection.unavailable.first() {
        anyhow::bail!(
            "module {id}: no variant for the interfaces offered ({}); variants need {}",
            offered.join(", "),
            needs.join(", ")
        );
    }
    let mut out = Vec::new();
    for (entry, bytes) in &selection.chosen {
        out.push(engine.load(&entry.id, bytes)?);
    }
    Ok(out)
}

/// A default engine.
pub fn engine() -> Engine {
    match Engine::new(EngineConfig::default()) {
        Ok(e) => e,
        Err(e) => panic!("engine: {e}"),
    }
}

/// What a replay produced.
pub struct Outcome {
    pub alerts: Vec<AlertRecord>,
    pub stats: ReplayStats,
    pub modules: Vec<Inspected>,
}

impl Outcome {
    /// sid → packet numbers it alerted on, in order.
    pub fn by_sid(&self) -> BTreeMap<u32, Vec<u64>> {
        let mut map: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for a in &self.alerts {
            map.entry(a.signature_id).or_default().push(a.pcap_cnt);
        }
        map
    }
}

/// Replay `pcap` through `modules`, collecting every alert.
pub fn run_replay(
    modules: &[LoadedModule],
    pcap: &Path,
    opts: &ReplayOptions,
) -> anyhow::Result<Outcome> {
    let mut alerts = Vec::new();
    let result = replay(modules, pcap, opts, &mut |a| {
        alerts.push(a.clone());
        Ok(())
    });
    match result {
        Ok((stats, modules)) => Ok(Outcome {
            alerts,
            stats,
            modules,
        }),
        Err((_, e)) => Err(e.into()),
    }
}
