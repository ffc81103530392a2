//! Stream chunks end to end: rules compiled to a component see content split
//! across segments, and a rule matching both a packet and the chunk it
//! completed alerts once, on that packet.

use std::collections::BTreeMap;
use std::path::Path;

use sandgate_host::replay::{load_bundle, replay, ReplayOptions};
use sandgate_patterns::pipeline::{build, BuildOptions};
use sandgate_patterns::rules::Vars;
use sandgate_runtime::{Engine, EngineConfig, LoadedModule};

fn modules(rules: &str) -> Vec<LoadedModule> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stream.rules");
    std::fs::write(&path, rules).unwrap();
    let report = build(&BuildOptions {
        inputs: vec![path],
        vars: Vars::suricata_defaults(),
        module_id: "ips-rules".into(),
        bundle_version: Some(1),
    })
    .unwrap();
    let engine = Engine::new(EngineConfig::default()).unwrap();
    // The variant this engine serves, as the host loads bundles (the 1.2.0
    // one here); loading both variants would alert twice.
    let loaded = load_bundle(&engine, &report.bundle);
    assert!(loaded.refused.is_empty(), "{:?}", loaded.refused);
    loaded.modules
}

/// sid → packet numbers of the alerts, replaying the bundled example capture.
fn alerts(rules: &str) -> BTreeMap<u32, Vec<u64>> {
    let pcap = Path::new(env!("CARGO_MANIFEST_DIR")).join("../patterns/examples/example.pcap");
    let mut by_sid: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let (stats, _) = replay(
        &modules(rules),
        &pcap,
        &ReplayOptions::default(),
        &mut |a| {
            by_sid.entry(a.signature_id).or_default().push(a.pcap_cnt);
            Ok(())
        },
    )
    .map_err(|(_, e)| e)
    .unwrap();
    assert!(stats.stream.chunks > 0);
    assert_eq!(stats.suppressed_alerts, 0);
    by_sid
}

#[test]
fn content_split_across_segments_alerts_on_the_completing_packet() {
    let got = alerts(
        r#"alert tcp any any -> any 9000 (msg:"split"; flow:to_server,established; content:"MALWARE-SIGNATURE-SPLIT"; sid:1;)"#,
    );
    assert_eq!(got, BTreeMap::from([(1, vec![43])]));
}

#[test]
fn a_rule_matching_a_packet_and_its_chunk_alerts_once() {
    let got = alerts(
        r#"alert tcp any any -> any 9000 (msg:"second half"; flow:established; content:"ATURE-SPLIT"; sid:2;)"#,
    );
    assert_eq!(got, BTreeMap::from([(2, vec![43])]));
}
