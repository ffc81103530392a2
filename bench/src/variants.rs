//! The same ruleset as a bundle with two variants, replayed end to end by
//! the host (decode, flows, reassembly, HTTP/DNS/TLS parsing, inspection):
//! the 1.0.0 variant an engine offering 1.0/1.1 picks (packet rules only,
//! `list<packet>` records) against the 1.2.0 variant a 0.3.0 engine picks
//! (every rule, flat descriptors, transaction entries).

use std::path::PathBuf;

use anyhow::{bail, Result};
use sandgate_host::replay::{load_bundle, ReplayOptions, Replayer};
use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::Vars;
use sandgate_runtime::version::InterfaceVersion;
use sandgate_runtime::{Engine, EngineConfig};

use crate::{row, Row};

/// One row per variant: packets/s and Mbit/s of `sandgate replay` over
/// `pcaps`, plus the alerts each raised; the 1.2.0 row's ratio is to 1.0.0.
pub fn rows(label: &str, rules: &[PathBuf], pcaps: &[PathBuf], out: &mut Vec<Row>) -> Result<()> {
    let report = build(&BuildOptions {
        inputs: rules.to_vec(),
        vars: Vars::suricata_defaults(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })?;
    for v in &report.variants {
        out.push(row(
            format!("{label}: variant {} rules", v.interface),
            format!("{} rules", v.rules),
        ));
    }
    let mut base: Option<f64> = None;
    for (name, interfaces) in [
        (
            "1.0.0 variant (engine 0.2.0)",
            vec![
                InterfaceVersion::new(1, 0, 0),
                InterfaceVersion::new(1, 1, 0),
            ],
        ),
        (
            "1.2.0 variant (engine 0.3.0)",
            EngineConfig::default().interfaces,
        ),
    ] {
        let engine = Engine::new(EngineConfig {
            interfaces,
            ..EngineConfig::default()
        })?;
        let loaded = load_bundle(&engine, &report.bundle);
        if let Some(e) = loaded.refused.first() {
            bail!("{label} {name}: {e}");
        }
        // One replayer for every capture: the modules are instantiated
        // once, as on a gateway, and each capture's flows end with it.
        let mut replayer = Replayer::new(&loaded.modules, &ReplayOptions::default());
        let (mut packets, mut bytes, mut alerts, mut secs) = (0u64, 0u64, 0u64, 0f64);
        for pcap in pcaps {
            let Ok((stats, _)) = replayer.replay(pcap, &mut |_| Ok(())) else {
                continue;
            };
            packets += stats.packets;
            bytes += stats.bytes;
            alerts += stats.alerts;
            secs += stats.elapsed.as_secs_f64();
        }
        if packets == 0 || secs == 0.0 {
            bail!("{label}: no packets replayed");
        }
        let pps = packets as f64 / secs;
        let mut r = Row {
            name: format!("{label}: replay, {name}"),
            value: format!(
                "{pps:.0} packets/s, {:.0} Mbit/s; {alerts} alerts; {} captures, instantiation {:.0} ms once",
                bytes as f64 * 8.0 / secs / 1e6,
                pcaps.len(),
                replayer.startup().as_secs_f64() * 1e3
            ),
            baseline: String::new(),
            ratio: String::new(),
        };
        match base {
            None => base = Some(pps),
            Some(b) => {
                r.baseline = format!("1.0.0 variant {b:.0} packets/s");
                r.ratio = format!("{:.2}x", pps / b);
            }
        }
        out.push(r);
    }
    Ok(())
}
