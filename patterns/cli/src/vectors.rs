//! Running a module's test vectors: for an IPS module the capture through
//! the host's replay (the same path as the appliance's self-test), alerts
//! counted by sid; for an AV module each vector file scanned (all-match,
//! 64 KiB chunks, as `sandgate scan` feeds them), detections counted by sid.

use std::collections::BTreeMap;

use anyhow::Context;
use sandgate_host::replay::{replay, ReplayOptions};
use sandgate_patterns::vectors::{unpack_files, AlertCounts};
use sandgate_runtime::wit::ModuleKind;
use sandgate_runtime::{LoadedModule, ScanOptions};

/// What a vector run saw.
pub struct Run {
    pub counts: AlertCounts,
    /// Fault kind → count, when the module faulted.
    pub faults: Vec<(String, u64)>,
}

/// Run `vectors` (a capture for IPS modules, packed files for AV modules)
/// through `module` alone.
pub fn run(module: &LoadedModule, vectors: &[u8]) -> anyhow::Result<Run> {
    match module.kind() {
        ModuleKind::Ips => replay_capture(module, vectors),
        ModuleKind::Av => scan_files(module, vectors),
    }
}

/// Scan each vector file; every signature detected counts once per file.
fn scan_files(module: &LoadedModule, blob: &[u8]) -> anyhow::Result<Run> {
    let files = unpack_files(blob).map_err(|e| anyhow::anyhow!("module {}: {e}", module.name()))?;
    let mut inst = module
        .instantiate_scanner()
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    let opts = ScanOptions {
        all_match: true,
        ..ScanOptions::default()
    };
    let rules = &module.info().rules;
    let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    for (_, bytes) in &files {
        match inst.scan_reader(&mut &bytes[..], &opts, 64 * 1024) {
            Ok(report) => {
                for d in &report.detections {
                    if let Some(r) = rules.get(d.signature as usize) {
                        *counts.entry(r.sid).or_default() += 1;
                    }
                }
            }
            Err(Err(fault)) => *faults.entry(format!("{:?}", fault.kind)).or_default() += 1,
            Err(Ok(io)) => anyhow::bail!("reading a vector file from memory: {io}"),
        }
    }
    Ok(Run {
        counts,
        faults: faults.into_iter().collect(),
    })
}

/// Replay `pcap` (capture file bytes) through `module` alone.
fn replay_capture(module: &LoadedModule, pcap: &[u8]) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let path = dir.path().join("vectors.pcap");
    std::fs::write(&path, pcap).with_context(|| format!("writing {}", path.display()))?;
    let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
    let (_, inspected) = replay(
        std::slice::from_ref(module),
        &path,
        &ReplayOptions::default(),
        &mut |a| {
            *counts.entry(a.signature_id).or_default() += 1;
            Ok(())
        },
    )
    .map_err(|(_, e)| anyhow::anyhow!("replaying the test vectors: {e}"))?;
    let faults = inspected.into_iter().flat_map(|i| i.faults).collect();
    Ok(Run { counts, faults })
}
