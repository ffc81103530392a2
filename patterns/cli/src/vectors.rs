//! Running a module's test vectors: the capture through the host's replay
//! (the same path as the appliance's self-test), alerts counted by sid.

use std::collections::BTreeMap;

use anyhow::Context;
use sandgate_host::replay::{replay, ReplayOptions};
use sandgate_patterns::vectors::AlertCounts;
use sandgate_runtime::LoadedModule;

/// What a vector run saw.
pub struct Run {
    pub counts: AlertCounts,
    /// Fault kind → count, when the module faulted.
    pub faults: Vec<(String, u64)>,
}

/// Replay `pcap` (capture file bytes) through `module` alone.
pub fn run(module: &LoadedModule, pcap: &[u8]) -> anyhow::Result<Run> {
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
