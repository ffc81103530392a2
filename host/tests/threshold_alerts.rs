//! Rule thresholds end to end: the example capture's 42 HTTP GETs through
//! rules with `threshold` / `detection_filter`, checking which alerts are
//! emitted, how many are suppressed, and which packets a `drop` rule drops.

use std::path::Path;

use sandgate_host::replay::{load_bundle, replay, ReplayOptions, ReplayStats};
use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::Vars;
use sandgate_runtime::{Engine, EngineConfig};

/// Replays the example capture through `rule`; returns alert packet numbers.
fn run(rule: &str) -> (Vec<u64>, ReplayStats) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.rules");
    std::fs::write(&path, rule).unwrap();
    let report = build(&BuildOptions {
        inputs: vec![path],
        vars: Vars::suricata_defaults(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })
    .unwrap();
    assert_eq!(report.rules_compiled, 1, "{:?}", report.skipped);
    let engine = Engine::new(EngineConfig::default()).unwrap();
    // The variant this engine serves, as the host loads bundles.
    let loaded = load_bundle(&engine, &report.bundle);
    assert!(loaded.refused.is_empty(), "{:?}", loaded.refused);
    let modules = loaded.modules;
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../patterns/examples/example.pcap");
    let mut packets = Vec::new();
    let (stats, _) = replay(&modules, &pcap, &ReplayOptions::default(), &mut |a| {
        packets.push(a.pcap_cnt);
        Ok(())
    })
    .map_err(|(_, e)| e)
    .unwrap();
    (packets, stats)
}

const GET: &str =
    r#"tcp any any -> any 80 (msg:"GET"; flow:to_server; content:"GET "; startswith;"#;

#[test]
fn limit_emits_the_first_alert_and_still_drops_every_match() {
    let (alerts, stats) = run(&format!(
        "drop {GET} threshold: type limit, track by_rule, count 1, seconds 60; sid:1;)"
    ));
    assert_eq!(alerts, [5]);
    assert_eq!(stats.suppressed_alerts, 41);
    assert_eq!(stats.dropped_by_rule, 42, "limit only rate-limits alerts");
}

#[test]
fn threshold_by_dst_alerts_every_count_th_match() {
    // 42 GETs to 192.168.1.80 within a second: alerts on the 10th, 20th, ...
    let (alerts, stats) = run(&format!(
        "alert {GET} threshold: type threshold, track by_dst, count 10, seconds 60; sid:2;)"
    ));
    assert_eq!(alerts.len(), 4);
    assert_eq!(stats.suppressed_alerts, 38);
}

#[test]
fn detection_filter_withholds_alert_and_drop_until_the_count() {
    let (alerts, stats) = run(&format!(
        "drop {GET} detection_filter: track by_rule, count 40, seconds 60; sid:3;)"
    ));
    assert_eq!(alerts.len(), 2);
    assert_eq!(stats.dropped_by_rule, 2);
    assert_eq!(stats.actions_withheld, 40);
}
